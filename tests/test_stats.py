"""Statistics for metrics, chunked through numpy."""
from __future__ import annotations

import pytest

from src import stats
from src.schema import CATEGORIES
from src.stats import RecordStats


@pytest.mark.parametrize("chunk", [1, 2, 10_000])
def test_stats_are_the_same_whatever_the_chunk_size(monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(stats, "CHUNK_RECORDS", chunk)
    accumulator = RecordStats()
    for category, chars in (("open_qa", (1, 0, 3)), ("closed_qa", (2, 2, 1)), ("open_qa", (1, 0, 5))):
        accumulator.add(category, chars)
    assert accumulator.summary() == {
        "records": 3,
        "with_input": 1,
        "categories": {**{c: 0 for c in CATEGORIES}, "open_qa": 2, "closed_qa": 1},
        "mean_chars": {"instruction": round(4 / 3, 2), "input": round(2 / 3, 2), "output": 3.0},
    }


def test_empty_stats() -> None:
    assert RecordStats().summary()["records"] == 0
