"""Scratch tables for per-record work larger than memory: an in-process DuckDB database that spills to a private
temporary directory past a fixed memory limit. Queries are written to spill (aggregates, and windows over one sort
order: a window partitioned by key keeps whole partitions in memory)."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import duckdb
import numpy as np

from src.core.errors import DatasetError

# On one thread (each thread's operators hold buffers of their own), the queries here spill within this limit at
# 10 million records (measured; at 16 MB the larger ones fail).
MEMORY_LIMIT = "32MB"


@contextmanager
def scratch_database() -> Iterator[duckdb.DuckDBPyConnection]:
    """A new in-memory DuckDB database, closed and its spill directory removed when the with block ends."""
    with tempfile.TemporaryDirectory(prefix="scratch-") as directory:
        database = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 1, "temp_directory": directory,
                                          # results are ordered by ORDER BY where order matters
                                          "preserve_insertion_order": False})
        try:
            yield database
        except duckdb.OutOfMemoryException as error:
            raise DatasetError(f"the scratch database needed more than its {MEMORY_LIMIT} of memory ({error}); "
                               "please report this, with the number of records") from None
        finally:
            database.close()


@contextmanager
def registered(database: duckdb.DuckDBPyConnection, name: str, columns: Mapping[str, np.ndarray]) -> Iterator[None]:
    """Named numpy columns (of equal length, any layout) readable as table ``name`` in the with block."""
    database.register(name, {column: np.ascontiguousarray(values) for column, values in columns.items()})
    try:
        yield
    finally:
        database.unregister(name)


def insert(database: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, np.ndarray]) -> None:
    """Append rows given as named numpy columns to ``table``, matching its columns by name."""
    with registered(database, "new_rows", columns):
        database.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")
