"""Per-dataset statistics for metrics files, accumulated over fixed-size chunks with numpy (flat memory).

numpy rather than pandas: importing pandas alone takes about 100 MB of resident memory, most of a stage's
budget, for sums that numpy does as well.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .schema import CATEGORIES

TEXT_FIELDS = ("instruction", "input", "output")
CHUNK_RECORDS = 10_000
_CATEGORY_CODES = {category: code for code, category in enumerate(CATEGORIES)}


class RecordStats:
    """Accumulates record count, category counts and text lengths; summary() gives the metrics."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, int, int, int]] = []
        self.records = 0
        self._categories = np.zeros(len(CATEGORIES), dtype=np.int64)
        self._chars = np.zeros(len(TEXT_FIELDS), dtype=np.int64)
        self._with_input = 0

    def add(self, category: str, chars: Sequence[int]) -> None:
        """Count one record of ``category`` whose instruction, input and output have ``chars`` characters."""
        self._pending.append((_CATEGORY_CODES[category], chars[0], chars[1], chars[2]))
        if len(self._pending) >= CHUNK_RECORDS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        rows = np.array(self._pending, dtype=np.int64)
        self._pending = []
        self.records += len(rows)
        self._categories += np.bincount(rows[:, 0], minlength=len(CATEGORIES))
        self._chars += rows[:, 1:].sum(axis=0)
        self._with_input += int((rows[:, 2] > 0).sum())

    def summary(self) -> dict:
        self._flush()
        mean = {field: round(int(self._chars[n]) / self.records, 2) if self.records else 0.0
                for n, field in enumerate(TEXT_FIELDS)}
        return {
            "records": self.records,
            "with_input": self._with_input,
            "categories": {category: int(self._categories[n]) for n, category in enumerate(CATEGORIES)},
            "mean_chars": mean,
        }
