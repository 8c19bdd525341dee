"""Record statistics by group (one group for the merged data, one per shard for a split), accumulated over
fixed-size chunks with numpy, so memory stays flat however many records there are.

numpy rather than pandas: importing pandas alone takes about 100 MB of resident memory, most of a stage's
budget, for sums that numpy does as well.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from src.core.schema import CATEGORIES

TEXT_FIELDS = ("instruction", "input", "output")
CHUNK_RECORDS = 10_000
# Lower edges of the record length bins (characters of instruction, input and output together).
LENGTH_BINS = (0, 50, 100, 200, 400, 800, 1600, 3200, 6400)


def length_label(number: int) -> str:
    start = LENGTH_BINS[number]
    return f"{start}+" if number == len(LENGTH_BINS) - 1 else f"{start}-{LENGTH_BINS[number + 1] - 1}"


class RecordStats:
    """Per group: records, category counts, characters per text field, records with input, length bins."""

    def __init__(self, groups: int = 1) -> None:
        self._pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._pending_records = 0
        self.categories = np.zeros((groups, len(CATEGORIES)), dtype=np.int64)
        self.chars = np.zeros((groups, len(TEXT_FIELDS)), dtype=np.int64)
        self.with_input = np.zeros(groups, dtype=np.int64)
        self.lengths = np.zeros((groups, len(LENGTH_BINS)), dtype=np.int64)

    def add(self, categories: Sequence[int] | np.ndarray, chars: Sequence[Sequence[int]] | np.ndarray,
            group: int = 0) -> None:
        """Count records of group ``group``: their ``categories`` (src/core/schema.py CATEGORY_CODES) and the characters
        of their instruction, input and output (``chars``, three per record)."""
        codes = np.asarray(categories, dtype=np.int64)
        self._pending.append((group, codes, np.asarray(chars, dtype=np.int64).reshape(len(codes), len(TEXT_FIELDS))))
        self._pending_records += len(codes)
        if self._pending_records >= CHUNK_RECORDS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        groups = np.concatenate([np.full(len(codes), group, dtype=np.int64) for group, codes, _ in self._pending])
        codes = np.concatenate([codes for _, codes, _ in self._pending])
        chars = np.concatenate([chars for _, _, chars in self._pending])
        self._pending, self._pending_records = [], 0
        count = len(self.with_input)
        self.categories += np.bincount(groups * len(CATEGORIES) + codes,
                                       minlength=count * len(CATEGORIES)).reshape(count, -1)
        for field in range(len(TEXT_FIELDS)):
            self.chars[:, field] += np.bincount(groups, weights=chars[:, field], minlength=count).astype(np.int64)
        self.with_input += np.bincount(groups[chars[:, 1] > 0], minlength=count)
        bins = np.searchsorted(LENGTH_BINS, chars.sum(axis=1), side="right") - 1
        self.lengths += np.bincount(groups * len(LENGTH_BINS) + bins,
                                    minlength=count * len(LENGTH_BINS)).reshape(count, -1)

    def mean_chars(self, group: int = 0) -> dict[str, float]:
        self.flush()
        records = int(self.categories[group].sum())
        return {field: round(int(self.chars[group, n]) / records, 2) if records else 0.0
                for n, field in enumerate(TEXT_FIELDS)}

    def summary(self, group: int = 0) -> dict:
        """The metrics of one group."""
        self.flush()
        return {
            "records": int(self.categories[group].sum()),
            "with_input": int(self.with_input[group]),
            "categories": {category: int(self.categories[group, n]) for n, category in enumerate(CATEGORIES)},
            "mean_chars": self.mean_chars(group),
        }
