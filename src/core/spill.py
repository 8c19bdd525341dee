"""Scratch space on disk at flat memory: hash-partitioned spill files, and SQLite scratch tables for keyed lookups
one at a time (src/core/scratch.py's DuckDB works on whole tables)."""
from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from typing import Self

import numpy as np

PARTITION_RECORDS = 1 << 16  # rows per spill file, a few MB, so a file is grouped in little memory
MAX_PARTITIONS = 256


class Scratch:
    """Something on disk that close(), or leaving its with block, deletes."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpillPartitions(Scratch):
    """Rows of ``dtype`` spilled to temporary files by a 64-bit key, about ``records`` of them in all, and read back
    a file at a time. All rows of a key are in one file, so grouping by key with numpy sorts keeps memory flat."""

    def __init__(self, dtype: np.dtype, records: int) -> None:
        self.dtype = dtype
        count = min(MAX_PARTITIONS, max(1, -(-records // PARTITION_RECORDS)))
        self._files = [tempfile.TemporaryFile(prefix="spill-") for _ in range(count)]  # noqa: SIM115 -- see close()
        self.rows = 0  # added so far

    def add(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Spill ``rows``, each to the partition of its ``keys`` value (uint64)."""
        self.rows += len(rows)
        partitions = keys % np.uint64(len(self._files))
        order = np.argsort(partitions, kind="stable")
        bounds = np.searchsorted(partitions[order], np.arange(len(self._files) + 1))
        for number in np.flatnonzero(np.diff(bounds)):
            rows[order[bounds[number]:bounds[number + 1]]].tofile(self._files[number])

    def partitions(self) -> Iterator[np.ndarray]:
        """Each partition's rows, in the order they were added; once, after the last add()."""
        for stream in self._files:
            stream.seek(0)
            rows = np.fromfile(stream, dtype=self.dtype)
            stream.close()  # deletes the file
            yield rows

    def close(self) -> None:
        for stream in self._files:
            stream.close()


def scratch_database() -> sqlite3.Connection:
    """A private temporary SQLite database, deleted when closed, with a bounded page cache."""
    database = sqlite3.connect("")
    database.execute("PRAGMA cache_size = -2048")  # 2 MiB: 8 MiB cost the split 8 MiB of peak, no time
    return database


class ScratchTables(Scratch):
    """Owner of a scratch_database()."""

    def __init__(self) -> None:
        self._db = scratch_database()

    def close(self) -> None:
        self._db.close()
