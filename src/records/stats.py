"""Record statistics by group (the merged data as one group, each shard of a split as one): records, records with
an input, characters of each text field, category counts and record length bins. Every count is a sum, so they are
added up a chunk of record index rows (src/records/index.py) at a time: memory stays flat at any size.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from src.core.schema import CATEGORIES

TEXT_FIELDS = ("instruction", "input", "output")
# Lower edges of the record length bins (characters of instruction, input and output together).
LENGTH_BINS = (0, 50, 100, 200, 400, 800, 1600, 3200, 6400)


def length_label(number: int) -> str:
    start = LENGTH_BINS[number]
    return f"{start}+" if number == len(LENGTH_BINS) - 1 else f"{start}-{LENGTH_BINS[number + 1] - 1}"


LENGTH_LABELS = [length_label(number) for number in range(len(LENGTH_BINS))]
# The columns of GroupStats.counts: a count per category (its name) and per length bin (its label).
COLUMNS = ["records", "with_input", *(f"chars_{field}" for field in TEXT_FIELDS), *CATEGORIES, *LENGTH_LABELS]


class GroupStats:
    """The counts of ``groups`` groups, numbered from 0, one row of COLUMNS each (a table for pandas; numpy alone
    where one group is all there is, as pandas' import costs the merge 0.3 s and 60 MiB)."""

    def __init__(self, groups: int = 1) -> None:
        self.counts = np.zeros((groups, len(COLUMNS)), dtype=np.int64)

    def add(self, rows: np.ndarray, group: int = 0) -> None:
        """Count the records of record index ``rows`` in ``group``."""
        chars = rows["chars"].astype(np.int64)
        lengths = np.searchsorted(LENGTH_BINS, chars.sum(axis=1), side="right") - 1
        self.counts[group] += np.concatenate([
            [len(rows), np.count_nonzero(chars[:, 1])], chars.sum(axis=0),
            np.bincount(rows["category"], minlength=len(CATEGORIES)), np.bincount(lengths, minlength=len(LENGTH_BINS))])

    def row(self, group: int = 0) -> dict[str, int]:
        """One group's counts by column name."""
        return dict(zip(COLUMNS, self.counts[group].tolist(), strict=True))


def mean_chars(stats: Mapping[str, int]) -> dict[str, float]:
    """Mean characters of each text field in one group's counts (GroupStats.row(), or a row of a DataFrame of them)."""
    records = int(stats["records"])
    return {field: round(int(stats[f"chars_{field}"]) / records, 2) if records else 0.0 for field in TEXT_FIELDS}


def summary(stats: Mapping[str, int]) -> dict:
    """The metrics of one group's counts (GroupStats.row(), or a row of a DataFrame of them)."""
    return {"records": int(stats["records"]), "with_input": int(stats["with_input"]),
            "categories": {category: int(stats[category]) for category in CATEGORIES}, "mean_chars": mean_chars(stats)}
