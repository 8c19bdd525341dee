"""A set of record keys kept on disk, so that duplicate detection keeps memory flat at any size."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Self

# Keys looked up per SELECT ... IN (...): SQLite allows 32,766 parameters per statement; stay well below.
LOOKUP_BATCH = 500


def scratch_database() -> sqlite3.Connection:
    """A private temporary on-disk SQLite database (SQLite deletes it when it is closed), with a bounded page
    cache: where the stages keep per-record tables at flat memory."""
    database = sqlite3.connect("")
    database.execute("PRAGMA cache_size = -8192")
    return database


class ScratchTables:
    """Owner of a scratch_database(): closing it, or leaving its with block, deletes its tables."""

    def __init__(self) -> None:
        self._db = scratch_database()

    def select_in(self, query: str, keys: Sequence[object]) -> Iterator[tuple]:
        """The rows of ``query``, which ends in "IN", for ``keys``: LOOKUP_BATCH keys per statement."""
        for start in range(0, len(keys), LOOKUP_BATCH):
            batch = keys[start:start + LOOKUP_BATCH]
            yield from self._db.execute(f"{query} ({','.join('?' * len(batch))})", batch)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SeenSet(ScratchTables):
    """A set of digests kept in a temporary on-disk SQLite table, so memory stays flat."""

    def __init__(self) -> None:
        super().__init__()
        self._db.execute("CREATE TABLE seen (digest BLOB PRIMARY KEY) WITHOUT ROWID")

    def add_digests(self, digests: Sequence[bytes]) -> list[bool]:
        """Add ``digests``; per digest, in order, whether it was new (not added before, nor earlier in
        ``digests``). One lookup and one insert per batch rather than one statement per key (merge at 1M records:
        about 10% faster)."""
        seen = {found for (found,) in self.select_in("SELECT digest FROM seen WHERE digest IN",
                                                     list(dict.fromkeys(digests)))}
        new = []
        for key_digest in digests:
            new.append(key_digest not in seen)
            seen.add(key_digest)
        self._db.executemany("INSERT INTO seen VALUES (?)",
                             [(key_digest,) for key_digest, fresh in zip(digests, new, strict=True) if fresh])
        return new
