"""A set of record keys kept on disk, so that duplicate detection keeps memory flat at any size."""
from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from typing import Self

# Keys looked up per SELECT ... IN (...): SQLite allows 32,766 parameters per statement; stay well below.
LOOKUP_BATCH = 500


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

    def add_all(self, keys: Sequence[bytes]) -> list[bool]:
        """Add the digests of ``keys``; per key, in order, whether it was new (not added before, nor earlier in
        ``keys``). One lookup and one insert per batch instead of one statement per key: about three times
        faster per key."""
        digests = [hashlib.blake2b(key, digest_size=16).digest() for key in keys]
        distinct = list(dict.fromkeys(digests))
        seen: set[bytes] = set()
        for start in range(0, len(distinct), LOOKUP_BATCH):
            batch = distinct[start:start + LOOKUP_BATCH]
            seen.update(digest for (digest,) in self._db.execute(
                f"SELECT digest FROM seen WHERE digest IN ({','.join('?' * len(batch))})", batch))
        new = []
        for digest in digests:
            new.append(digest not in seen)
            seen.add(digest)
        self._db.executemany("INSERT INTO seen VALUES (?)",
                             [(digest,) for digest, fresh in zip(digests, new, strict=True) if fresh])
        return new

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
