"""Record statistics by group, added up a chunk of record index rows at a time."""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.core.schema import CATEGORIES, CATEGORY_CODES
from src.records.index import ROW
from src.records.stats import COLUMNS, LENGTH_LABELS, GroupStats, summary


def stats_of(records: list[tuple[int, str, tuple[int, int, int]]], groups: int, chunk: int = 2) -> pd.DataFrame:
    """GroupStats.counts of records given as (group, category, characters of instruction, input and output), added
    ``chunk`` records at a time."""
    stats = GroupStats(groups)
    for start in range(0, len(records), chunk):
        for group, category, chars in records[start:start + chunk]:
            rows = np.zeros(1, dtype=ROW)
            rows["category"], rows["chars"] = CATEGORY_CODES[category], chars
            stats.add(rows, group)
    return pd.DataFrame(stats.counts, columns=COLUMNS)


def test_the_metrics_of_a_group() -> None:
    stats = stats_of([(0, "open_qa", (1, 0, 3)), (0, "closed_qa", (2, 2, 1)), (0, "open_qa", (1, 0, 5))], 1)
    assert summary(stats.iloc[0]) == {
        "records": 3,
        "with_input": 1,
        "categories": {**{c: 0 for c in CATEGORIES}, "open_qa": 2, "closed_qa": 1},
        "mean_chars": {"instruction": round(4 / 3, 2), "input": round(2 / 3, 2), "output": 3.0},
    }


def test_a_group_without_records_has_zeros() -> None:
    assert summary(stats_of([], 1).iloc[0]) == {"records": 0, "with_input": 0, "categories": {c: 0 for c in CATEGORIES},
                                                "mean_chars": {"instruction": 0.0, "input": 0.0, "output": 0.0}}


def test_groups_are_counted_apart_with_length_bins() -> None:
    # 49 and 50 characters: the first and second bins; 6400: the last.
    stats = stats_of([(1, "open_qa", (10, 0, 39)), (1, "summarization", (10, 30, 10)), (0, "open_qa", (4000, 2000, 400))],
                     3)
    assert stats[LENGTH_LABELS].to_numpy().tolist() == [[0, 0, 0, 0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 0, 0, 0],
                                                        [0] * 9]
    assert summary(stats.iloc[1])["categories"]["summarization"] == 1 and summary(stats.iloc[1])["with_input"] == 1
    assert summary(stats.iloc[0])["mean_chars"] == {"instruction": 4000.0, "input": 2000.0, "output": 400.0}
    assert stats["records"].tolist() == [1, 2, 0]


def test_many_rows_at_once_count_as_one_at_a_time() -> None:
    generator = np.random.default_rng(7)
    rows = np.zeros(5000, dtype=ROW)
    rows["category"] = generator.integers(0, len(CATEGORIES), 5000)
    rows["chars"] = generator.integers(0, 4000, (5000, 3))
    whole, single = GroupStats(), GroupStats()
    whole.add(rows)
    for row in range(5000):
        single.add(rows[row:row + 1])
    assert whole.row() == single.row() and whole.row()["records"] == 5000
