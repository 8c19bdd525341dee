"""Record statistics by group (the merged data, or each shard of a split), added up a chunk of record index rows
(src/records/index.py) at a time: every count is a sum, so memory stays flat at any size."""
from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import numpy as np

from src.core.schema import CATEGORIES

TEXT_FIELDS = ("instruction", "input", "output")
# Lower edges of the record length bins (characters of instruction, input and output together).
LENGTH_BINS = (0, 50, 100, 200, 400, 800, 1600, 3200, 6400)
LENGTH_LABELS = [f"{start}-{end - 1}" for start, end in pairwise(LENGTH_BINS)] + [f"{LENGTH_BINS[-1]}+"]
# The columns of GroupStats.counts: a count per category (its name) and per length bin (its label).
COLUMNS = ["records", "with_input", *(f"chars_{field}" for field in TEXT_FIELDS), *CATEGORIES, *LENGTH_LABELS]


class GroupStats:
    """The counts of ``groups`` groups, one row of COLUMNS each (numpy, not pandas: its import costs the merge
    0.3 s and 60 MiB)."""

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
        return dict(zip(COLUMNS, self.counts[group].tolist(), strict=True))


def mean_chars(stats: Mapping[str, int]) -> dict[str, float]:
    """Mean characters of each text field in one group's counts (GroupStats.row(), or a DataFrame row of them)."""
    records = int(stats["records"])
    return {field: round(int(stats[f"chars_{field}"]) / records, 2) if records else 0.0 for field in TEXT_FIELDS}


def summary(stats: Mapping[str, int]) -> dict:
    """The metrics of one group's counts."""
    return {"records": int(stats["records"]), "with_input": int(stats["with_input"]),
            "categories": {category: int(stats[category]) for category in CATEGORIES}, "mean_chars": mean_chars(stats)}
