"""Scratch tables for per-record work larger than memory: an in-process DuckDB database whose grouping, sorting and
joins spill to a private temporary directory past a fixed memory limit, so a stage's memory stays flat at any size.

Tables are filled from numpy arrays (DuckDB scans a dict of arrays by name) and read back as numpy arrays or pandas
DataFrames; nothing outlives the with block.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

# DuckDB's own buffers; the stage adds its imports (numpy, pandas, DuckDB: about 100 MiB) and its blocks in flight.
MEMORY_LIMIT = "64MB"


@contextmanager
def scratch_database() -> Iterator[duckdb.DuckDBPyConnection]:
    """A new in-memory DuckDB database limited to MEMORY_LIMIT, spilling to a temporary directory, one thread per
    core this process may use; closed, and its directory removed, when the with block ends."""
    with tempfile.TemporaryDirectory(prefix="scratch-") as directory:
        database = duckdb.connect(config={
            "memory_limit": MEMORY_LIMIT, "temp_directory": directory, "threads": len(os.sched_getaffinity(0)),
            # Results are ordered by ORDER BY where order matters; insertion order costs memory when spilling.
            "preserve_insertion_order": False,
        })
        try:
            yield database
        finally:
            database.close()
