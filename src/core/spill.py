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
