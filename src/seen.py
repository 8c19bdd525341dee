"""A set of record keys kept on disk, so that duplicate detection keeps memory flat at any size."""
from __future__ import annotations

import hashlib
import sqlite3
from typing import Self


def scratch_database() -> sqlite3.Connection:
    """A private temporary on-disk SQLite database (SQLite deletes it when it is closed), with a bounded page
    cache: where the stages keep per-record tables at flat memory."""
    database = sqlite3.connect("")
    database.execute("PRAGMA cache_size = -8192")
    return database


class SeenSet:
    """A set of digests kept in a temporary on-disk SQLite table, so memory stays flat."""

    def __init__(self) -> None:
        self._db = scratch_database()
        self._db.execute("CREATE TABLE seen (digest BLOB PRIMARY KEY) WITHOUT ROWID")

    def add(self, *parts: str) -> bool:
        """Add the digest of ``parts``; return False when the same parts were added before.

        Each part is prefixed with its byte length, so distinct tuples never digest the same bytes
        (joining with a separator made ("a\x00", "b") and ("a", "\x00b") one key).
        """
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            data = part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return self._insert(digest.digest())

    def add_bytes(self, key: bytes) -> bool:
        """Add the digest of ``key``; return False when the same bytes were added before."""
        return self._insert(hashlib.blake2b(key, digest_size=16).digest())

    def _insert(self, digest: bytes) -> bool:
        cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (digest,))
        return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
