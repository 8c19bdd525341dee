"""Record statistics by group, counted by DuckDB from a per-record table."""
from __future__ import annotations

import numpy as np

from src.core.schema import CATEGORIES, CATEGORY_CODES
from src.core.scratch import insert, scratch_database
from src.records.stats import STATS_COLUMNS, group_stats, length_label, summary


def stats_of(records: list[tuple[int, str, tuple[int, int, int]]], groups: int):
    """group_stats() of records given as (group, category, characters of instruction, input and output)."""
    with scratch_database() as database:
        database.execute(f"CREATE TABLE records (grp INTEGER, {STATS_COLUMNS})")
        chars = np.array([chars for _, _, chars in records], dtype=np.uint32).reshape(-1, 3)
        insert(database, "records", {"grp": np.array([group for group, _, _ in records], dtype=np.int32),
                                     "category": np.array([CATEGORY_CODES[c] for _, c, _ in records], dtype=np.uint8),
                                     "chars_instruction": chars[:, 0], "chars_input": chars[:, 1],
                                     "chars_output": chars[:, 2]})
        return group_stats(database, "records", "grp").df().set_index("grp").reindex(range(groups), fill_value=0)


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
    bins = [length_label(number) for number in range(9)]
    assert stats[bins].to_numpy().tolist() == [[0, 0, 0, 0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 0, 0, 0], [0] * 9]
    assert summary(stats.iloc[1])["categories"]["summarization"] == 1 and summary(stats.iloc[1])["with_input"] == 1
    assert summary(stats.iloc[0])["mean_chars"] == {"instruction": 4000.0, "input": 2000.0, "output": 400.0}
    assert stats["records"].tolist() == [1, 2, 0]
