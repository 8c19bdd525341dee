"""Hash-partitioned spill files: a per-record table written to disk a chunk at a time, split by a 64-bit key into
files of about PARTITION_RECORDS rows, and read back one file at a time. All rows of one key are in one file, so
grouping by key (numpy sorts, never a lookup per record) keeps memory flat at any size.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Self

import numpy as np

PARTITION_RECORDS = 1 << 16  # rows per spill file, about (a few MB), so a file is grouped in little memory
MAX_PARTITIONS = 256
DIGEST_ROW = np.dtype([("high", "<u8"), ("low", "<u8")])  # a 16-byte digest (src/core/seen.py) as two words


def digest_words(digests: np.ndarray) -> np.ndarray:
    """16-byte digests given as rows of two 64-bit words (src/records/index.py digest_rows()) as DIGEST_ROW rows."""
    return np.ascontiguousarray(digests, dtype="<u8").view(DIGEST_ROW).reshape(-1)


def repeated(rows: np.ndarray) -> np.ndarray:
    """For rows sorted by (high, low): whether each row but the first repeats the digest of the row before it."""
    return (rows["high"][1:] == rows["high"][:-1]) & (rows["low"][1:] == rows["low"][:-1])


class SpillPartitions:
    """Rows of ``dtype`` spilled by key into temporary files; read back a partition at a time."""

    def __init__(self, dtype: np.dtype, records: int) -> None:
        """``records``: about how many rows will be added (sizes the partitions)."""
        self.dtype = dtype
        self._count = min(MAX_PARTITIONS, max(1, -(-records // PARTITION_RECORDS)))
        self._directory = tempfile.TemporaryDirectory(prefix="spill-")
        self._open = ExitStack()
        self._files = [self._open.enter_context((Path(self._directory.name) / f"{number}.bin").open("wb"))
                       for number in range(self._count)]
        self.rows = 0  # added so far

    def add(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Spill ``rows``, each to the partition of its ``keys`` value (uint64)."""
        self.rows += len(rows)
        partitions = keys % np.uint64(self._count)
        order = np.argsort(partitions, kind="stable")
        bounds = np.searchsorted(partitions[order], np.arange(self._count + 1))
        for number in np.flatnonzero(np.diff(bounds)):
            rows[order[bounds[number]:bounds[number + 1]]].tofile(self._files[number])

    def partitions(self) -> Iterator[np.ndarray]:
        """Each partition's rows, in the order they were added; once, after the last add()."""
        for stream in self._files:
            stream.close()
            rows = np.fromfile(stream.name, dtype=self.dtype)
            Path(stream.name).unlink()
            yield rows

    def close(self) -> None:
        self._open.close()
        self._directory.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RepeatCounter(SpillPartitions):
    """How many of the digests added are repeats of one added before: an exact duplicate count that needs no lookup
    per record (where, unlike src/core/seen.py's SeenSet, nobody asks which records are the repeats)."""

    def __init__(self, records: int) -> None:
        super().__init__(DIGEST_ROW, records)

    def add_words(self, digests: np.ndarray) -> None:
        """Add 16-byte digests given as rows of two 64-bit words (src/records/index.py digest_rows())."""
        words = digest_words(digests)
        self.add(words, words["high"])

    def repeats(self) -> int:
        """Call once, after the last add_words()."""
        return sum(int(np.count_nonzero(repeated(rows[np.lexsort((rows["low"], rows["high"]))])))
                   for rows in self.partitions())
