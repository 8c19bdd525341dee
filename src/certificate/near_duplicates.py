"""Near-duplicate records: MinHash signatures (rensa, pinned) of a record's instruction and input, and LSH on disk
so that memory stays flat: records sharing one of a signature's ``bands`` bands are candidates, and near-duplicates
when the share of equal signature values (the MinHash estimate of Jaccard similarity) reaches the threshold."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np
from rensa import RMinHash

from src.certificate.ngrams import ngram_hashes
from src.core.config import NearDuplicateParams
from src.core.spill import Scratch, ScratchTables, SpillPartitions

SEED = 15015  # rensa's permutation seed; changing it changes every signature
SIGNATURE_BATCH = 1024  # rensa returns Python lists, about 100 bytes a value
PAIRS_PER_BATCH = 1 << 16  # candidate pairs made at a time, about 8 MB with their temporaries
SCORE_BATCH = 4096  # candidate pairs scored at a time: their two signatures, 4 MB at 128 permutations
BAND_ROW = np.dtype([("key", "<i8"), ("id", "<i8"), ("band", "<i8")])
PAIR_ROW = np.dtype([("first", "<i8"), ("second", "<i8"), ("band", "<i8")])


def prompt_text(record: dict) -> str:
    """What near-duplicates are judged on: the instruction and the input."""
    return f"{record['instruction']}\n{record['input']}"


def signatures(texts: Sequence[str], params: NearDuplicateParams) -> np.ndarray:
    """One row of ``params.permutations`` uint32 MinHash values per text."""
    rows = np.empty((len(texts), params.permutations), dtype=np.uint32)
    for start in range(0, len(texts), SIGNATURE_BATCH):
        hashes, offsets = ngram_hashes(texts[start:start + SIGNATURE_BATCH], params.ngram, short_whole=True)
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, params.permutations, SEED)
        rows[start:start + SIGNATURE_BATCH] = matrix.to_rows()
    return rows


def band_keys(rows: np.ndarray, params: NearDuplicateParams) -> np.ndarray:
    """One signed 64-bit key per (row, band), equal for equal values in the same band (or by a 2**-64 collision)."""
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
    """Signatures under integer ids, banded in an on-disk table, asked one at a time for an earlier near-duplicate;
    keep() is the merge's drop_near_duplicates."""

    def __init__(self, params: NearDuplicateParams) -> None:
        super().__init__()
        self.params = params
        self._db.execute("CREATE TABLE signature (id INTEGER PRIMARY KEY, value BLOB)")
        self._db.execute("CREATE TABLE band (key INTEGER, id INTEGER)")
        self._indexed = False
        self._kept = 0

    def add(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Index signature ``rows`` under ``ids`` (new ids only)."""
        keys = band_keys(rows, self.params)
        self._db.executemany("INSERT INTO signature VALUES (?, ?)",
                             zip(ids, (row.tobytes() for row in rows), strict=True))
        self._db.executemany("INSERT INTO band VALUES (?, ?)",
                             zip(keys.ravel().tolist(), np.repeat(ids, self.params.bands).tolist(), strict=True))

    def similar_to(self, row: np.ndarray) -> int | None:
        """The smallest id whose signature is a near-duplicate of ``row``, or None."""
        if not self._indexed:
            self._db.execute("CREATE INDEX band_key ON band (key)")
            self._indexed = True
        keys = band_keys(row.reshape(1, -1), self.params)[0].tolist()
        candidates = self._db.execute(
            f"SELECT DISTINCT band.id, value FROM band JOIN signature USING (id) "
            f"WHERE key IN ({','.join('?' * len(keys))}) ORDER BY band.id", keys)
        for ident, value in candidates:
            if similarity(row, value) >= self.params.threshold:
                return int(ident)
        return None

    def keep(self, prompts: Sequence[str]) -> np.ndarray:
        """Per prompt, in order, whether no earlier kept prompt is a near-duplicate of it; the kept are indexed."""
        keep = np.ones(len(prompts), dtype=bool)
        for number, row in enumerate(signatures(prompts, self.params)):
            keep[number] = self.similar_to(row) is None
            if keep[number]:
                self.add([self._kept], row.reshape(1, -1))
                self._kept += 1
        return keep




class NearDuplicatePairs(Scratch):
    """Every near-duplicate pair among many signatures (the leakage certificate), by sorting: band keys are spilled
    by key, and ids sharing a key sit together in each sorted partition. A pair counts in the first band it shares,
    so it is yielded once without keeping the pairs seen. Signature i waits in a sparse temporary file at i times
    its size. Memory stays flat however many records share a band; the work grows with the candidate pairs."""

    def __init__(self, params: NearDuplicateParams, records: int) -> None:
        """``records``: about how many signatures will be added."""
        self.params = params
        self._row_bytes = params.permutations * np.dtype(np.uint32).itemsize
        self._signatures = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by close()
        self._bands = SpillPartitions(BAND_ROW, records * params.bands)

    def add(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Add signature ``rows`` (uint32) under ``ids`` (new ids only, non-negative)."""
        for ident, row in zip(ids, rows, strict=True):
            os.pwrite(self._signatures.fileno(), row.tobytes(), ident * self._row_bytes)
        banded = np.empty((len(rows), self.params.bands), dtype=BAND_ROW)
        banded["key"] = band_keys(rows, self.params)
        banded["id"] = np.asarray(ids, dtype=np.int64).reshape(-1, 1)
        banded["band"] = np.arange(self.params.bands)
        self._bands.add(banded.ravel(), banded["key"].ravel().view(np.uint64))

    def pairs(self) -> Iterator[tuple[int, int, float]]:
        """Every near-duplicate pair (a, b, similarity) of distinct ids, a < b, once, in no particular order; call
        after the last add()."""
        for rows in self._bands.partitions():
            for candidates in _shared_key_pairs(rows[np.lexsort((rows["id"], rows["key"]))]):
                for start in range(0, len(candidates), SCORE_BATCH):
                    yield from self._near(candidates[start:start + SCORE_BATCH])

    def _near(self, candidates: np.ndarray) -> Iterator[tuple[int, int, float]]:
        """The near-duplicate pairs among PAIR_ROW ``candidates`` found in the first band their signatures share."""
        count, size = len(candidates), self._row_bytes
        ids, at = np.unique(np.concatenate((candidates["first"], candidates["second"])), return_inverse=True)
        signature_rows = np.frombuffer(b"".join([os.pread(self._signatures.fileno(), size, ident * size)
                                                 for ident in ids.tolist()]), dtype=np.uint32).reshape(len(ids), -1)
        keys = band_keys(signature_rows, self.params)
        # A candidate shares the band it was found in, so that band is first when no band before it is shared.
        found_first = np.argmax(keys[at[:count]] == keys[at[count:]], axis=1) == candidates["band"]
        scores = np.count_nonzero(signature_rows[at[:count]] == signature_rows[at[count:]],
                                  axis=1) / self.params.permutations
        near = found_first & (scores >= self.params.threshold)
        yield from zip(candidates["first"][near].tolist(), candidates["second"][near].tolist(),
                       scores[near].tolist(), strict=True)

    def close(self) -> None:
        self._bands.close()
        self._signatures.close()


def _shared_key_pairs(rows: np.ndarray) -> Iterator[np.ndarray]:
    """The (first, second, band) id pairs, first < second, of BAND_ROW ``rows`` sorted by key then id that share a
    key in the same band, at most PAIRS_PER_BATCH at a time (but all of one row's at once)."""
    # Row i pairs with the rows after it that have its key.
    partners = np.searchsorted(rows["key"], rows["key"], side="right") - np.arange(len(rows)) - 1
    having = np.flatnonzero(partners)
    cumulative = np.cumsum(partners[having])
    start = 0
    while start < len(having):
        done = int(cumulative[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cumulative, done + PAIRS_PER_BATCH, side="right")), start + 1)
        counts = partners[having[start:stop]]
        firsts = np.repeat(having[start:stop], counts)
        seconds = firsts + 1 + np.arange(len(firsts)) - np.repeat(cumulative[start:stop] - counts - done, counts)
        pairs = np.empty(len(firsts), dtype=PAIR_ROW)
        pairs["first"], pairs["second"], pairs["band"] = rows["id"][firsts], rows["id"][seconds], rows["band"][seconds]
        # Keys of different bands may collide (their hash mixes in the band number weakly): a pair shares a band.
        yield pairs[(pairs["first"] < pairs["second"]) & (rows["band"][firsts] == pairs["band"])]
        start = stop
