"""SQLite scratch tables on disk, for the certificate's and shard_diff's per-record lookups at flat memory (keyed
lookups one at a time, where src/core/scratch.py's DuckDB works on whole tables)."""
from __future__ import annotations

import sqlite3
from typing import Self


def scratch_database() -> sqlite3.Connection:
    """A private temporary on-disk SQLite database (SQLite deletes it when it is closed), with a bounded page
    cache: where the stages keep per-record tables at flat memory."""
    database = sqlite3.connect("")
    database.execute("PRAGMA cache_size = -2048")  # 2 MiB: 8 MiB cost the split 8 MiB of peak, no time
    return database


class ScratchTables:
    """Owner of a scratch_database(): closing it, or leaving its with block, deletes its tables."""

    def __init__(self) -> None:
        self._db = scratch_database()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
