"""Per-dataset statistics for metrics files, computed with pandas over fixed-size chunks (flat memory)."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from .schema import CATEGORIES

TEXT_FIELDS = ("instruction", "input", "output")
CHUNK_RECORDS = 10_000


class RecordStats:
    """Accumulates record count, category counts and text lengths; summary() gives the metrics."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, ...]] = []
        self.records = 0
        self._categories = pd.Series(0, index=list(CATEGORIES), dtype="int64")
        self._chars = pd.Series(0, index=list(TEXT_FIELDS), dtype="int64")
        self._with_input = 0

    def add(self, record: Mapping[str, str]) -> None:
        self._pending.append((record["category"], *(record[field] for field in TEXT_FIELDS)))
        if len(self._pending) >= CHUNK_RECORDS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        frame = pd.DataFrame(self._pending, columns=["category", *TEXT_FIELDS])
        self._pending = []
        self.records += len(frame)
        counts = frame["category"].value_counts()
        self._categories = self._categories.add(counts, fill_value=0).astype("int64")
        lengths = frame[list(TEXT_FIELDS)].apply(lambda column: column.str.len())
        self._chars += lengths.sum()
        self._with_input += int((lengths["input"] > 0).sum())

    def summary(self) -> dict:
        self._flush()
        mean = {field: round(int(self._chars[field]) / self.records, 2) if self.records else 0.0
                for field in TEXT_FIELDS}
        return {
            "records": self.records,
            "with_input": self._with_input,
            "categories": {category: int(self._categories[category]) for category in CATEGORIES},
            "mean_chars": mean,
        }
