"""Statistics for metrics, chunked through numpy."""
from __future__ import annotations

import pytest

from src.core.schema import CATEGORIES, CATEGORY_CODES
from src.records import stats
from src.records.stats import RecordStats


@pytest.mark.parametrize("chunk", [1, 2, 10_000])
def test_stats_are_the_same_whatever_the_chunk_size(monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(stats, "CHUNK_RECORDS", chunk)
    accumulator = RecordStats()
    accumulator.add([CATEGORY_CODES["open_qa"]], [(1, 0, 3)])
    accumulator.add([CATEGORY_CODES["closed_qa"], CATEGORY_CODES["open_qa"]], [(2, 2, 1), (1, 0, 5)])
    assert accumulator.summary() == {
        "records": 3,
        "with_input": 1,
        "categories": {**{c: 0 for c in CATEGORIES}, "open_qa": 2, "closed_qa": 1},
        "mean_chars": {"instruction": round(4 / 3, 2), "input": round(2 / 3, 2), "output": 3.0},
    }


def test_empty_stats() -> None:
    assert RecordStats().summary() == {"records": 0, "with_input": 0, "categories": {c: 0 for c in CATEGORIES},
                                       "mean_chars": {"instruction": 0.0, "input": 0.0, "output": 0.0}}


def test_groups_are_counted_apart_with_length_bins() -> None:
    accumulator = RecordStats(groups=2)
    codes = [CATEGORY_CODES["open_qa"], CATEGORY_CODES["summarization"]]
    accumulator.add(codes, [(10, 0, 39), (10, 30, 10)], group=1)  # 49 and 50 characters: the first and second bins
    accumulator.add(codes[:1], [(4000, 2000, 400)], group=0)  # 6400: the last
    accumulator.flush()
    assert accumulator.lengths.tolist() == [[0, 0, 0, 0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 0, 0, 0]]
    assert accumulator.summary(1)["categories"]["summarization"] == 1 and accumulator.summary(1)["with_input"] == 1
    assert accumulator.summary(0)["mean_chars"] == {"instruction": 4000.0, "input": 2000.0, "output": 400.0}
