"""Near-duplicate records: MinHash signatures of a record's instruction and input, and an on-disk LSH index.

The signatures come from rensa (a maintained Rust MinHash library, chosen over datasketch because it hashes a
whole chunk of records in one call, about 100 times faster than datasketch's per-record numpy; its algorithm and
seed are pinned with its version), over the character n-grams of src/ngrams.py. The LSH index is ours rather
than rensa's in-memory one because it lives in an on-disk SQLite table, so memory stays flat at any size: a
signature is cut into ``bands`` bands, records sharing any band's key are candidates, and a candidate pair is a
near-duplicate when the share of equal signature values (the MinHash estimate of Jaccard similarity) reaches the
threshold.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence

import numpy as np
from rensa import RMinHash

from .ngrams import ngram_hashes
from .params import NearDuplicateParams
from .seen import ScratchTables

SEED = 15015  # rensa's permutation seed; changing it changes every signature
SIGNATURE_BATCH = 1024


def prompt_text(record: dict) -> str:
    """What near-duplicates are judged on: the instruction and the input."""
    return f"{record['instruction']}\n{record['input']}"


def signatures(texts: Sequence[str], params: NearDuplicateParams) -> np.ndarray:
    """One row of ``params.permutations`` uint32 MinHash values per text."""
    rows = np.empty((len(texts), params.permutations), dtype=np.uint32)
    # rensa hands its matrix back as Python lists (about 100 bytes per value): a few thousand rows at a time.
    for start in range(0, len(texts), SIGNATURE_BATCH):
        hashes, offsets = ngram_hashes(texts[start:start + SIGNATURE_BATCH], params.ngram, short_whole=True)
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, params.permutations, SEED)
        rows[start:start + SIGNATURE_BATCH] = matrix.to_rows()
    return rows


def band_keys(rows: np.ndarray, params: NearDuplicateParams) -> np.ndarray:
    """One signed 64-bit key per (row, band): equal keys for the same values in the same band (and, with odds of
    about one in 2**64, by collision)."""
    keys = np.broadcast_to(np.arange(1, params.bands + 1, dtype=np.uint64), (len(rows), params.bands)).copy()
    banded = rows.reshape(len(rows), params.bands, params.rows).astype(np.uint64)
    for column in range(params.rows):
        keys = (keys ^ banded[:, :, column]) * np.uint64(0x9E3779B97F4A7C15)
        keys ^= keys >> np.uint64(29)
    return keys.view(np.int64)


def similarity(first: bytes | np.ndarray, second: bytes | np.ndarray) -> float:
    """The MinHash estimate of the Jaccard similarity of two signatures (rows or their bytes)."""
    a, b = (np.frombuffer(row, dtype=np.uint32) if isinstance(row, bytes) else row for row in (first, second))
    if a.shape != b.shape:
        raise ValueError(f"signatures of {len(a)} and {len(b)} values cannot be compared")
    return float(np.count_nonzero(a == b)) / len(a)


class NearDuplicateIndex(ScratchTables):
    """Signatures under integer ids, in an on-disk table, banded for candidate lookup."""

    def __init__(self, params: NearDuplicateParams) -> None:
        super().__init__()
        self.params = params
        self._db.execute("CREATE TABLE signature (id INTEGER PRIMARY KEY, value BLOB)")
        self._db.execute("CREATE TABLE band (key INTEGER, id INTEGER)")
        self._indexed = False

    def add(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Index signature ``rows`` under ``ids`` (new ids only)."""
        keys = band_keys(rows, self.params)
        self._db.executemany("INSERT INTO signature VALUES (?, ?)",
                             zip(ids, (row.tobytes() for row in rows), strict=True))
        self._db.executemany("INSERT INTO band VALUES (?, ?)",
                             zip(keys.ravel().tolist(), np.repeat(ids, self.params.bands).tolist(), strict=True))

    def _index(self) -> None:
        if not self._indexed:
            self._db.execute("CREATE INDEX band_key ON band (key)")
            self._indexed = True

    def similar_to(self, row: np.ndarray) -> int | None:
        """The smallest id whose signature is a near-duplicate of ``row``, or None."""
        self._index()
        keys = band_keys(row.reshape(1, -1), self.params)[0].tolist()
        candidates = self._db.execute(
            f"SELECT DISTINCT band.id, value FROM band JOIN signature USING (id) "
            f"WHERE key IN ({','.join('?' * len(keys))}) ORDER BY band.id", keys)
        for ident, value in candidates:
            if similarity(row, value) >= self.params.threshold:
                return int(ident)
        return None

    def pairs(self) -> Iterator[tuple[int, int, float]]:
        """Every near-duplicate pair (a, b, similarity) of distinct ids, a < b, in id order."""
        self._index()
        candidates = self._db.execute(
            "SELECT DISTINCT x.id, y.id FROM band AS x JOIN band AS y ON x.key = y.key AND x.id < y.id "
            "ORDER BY x.id, y.id")
        lookup = self._db.cursor()
        # One candidate list per first id, checked in one numpy comparison against its signature.
        for first, group in itertools.groupby(candidates, key=lambda pair: pair[0]):
            others = [second for _, second in group]
            (signature,) = lookup.execute("SELECT value FROM signature WHERE id = ?", (first,)).fetchone()
            values = b"".join(value for (value,) in lookup.execute(
                "SELECT value FROM signature JOIN (SELECT value AS id FROM json_each(?)) USING (id) "
                "ORDER BY id", (json.dumps(others),)))
            scores = np.count_nonzero(
                np.frombuffer(values, dtype=np.uint32).reshape(len(others), -1) == np.frombuffer(signature,
                                                                                                  dtype=np.uint32),
                axis=1) / self.params.permutations
            for second, score in zip(others, scores.tolist(), strict=True):
                if score >= self.params.threshold:
                    yield int(first), int(second), score
