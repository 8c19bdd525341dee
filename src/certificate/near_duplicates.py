"""Near-duplicate records: MinHash signatures of a record's instruction and input, and an on-disk LSH index.

The signatures come from rensa (a maintained Rust MinHash library, chosen over datasketch because it hashes a
whole chunk of records in one call, about 100 times faster than datasketch's per-record numpy; its algorithm and
seed are pinned with its version), over the character n-grams of src/certificate/ngrams.py. The LSH index is ours rather
than rensa's in-memory one because it lives in an on-disk SQLite table, so memory stays flat at any size: a
signature is cut into ``bands`` bands, records sharing any band's key are candidates, and a candidate pair is a
near-duplicate when the share of equal signature values (the MinHash estimate of Jaccard similarity) reaches the
threshold.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Self

import numpy as np
from rensa import RMinHash

from src.certificate.ngrams import ngram_hashes
from src.core.config import NearDuplicateParams
from src.core.spill import SpillPartitions
from src.core.sqlite_scratch import ScratchTables

SEED = 15015  # rensa's permutation seed; changing it changes every signature
SIGNATURE_BATCH = 1024
PAIRS_PER_BATCH = 1 << 16  # candidate pairs made at a time (NearDuplicatePairs: about 8 MB with their temporaries)
SCORE_BATCH = 4096  # candidate pairs scored at a time: their two signatures, 4 MB at 128 permutations
BAND_ROW = np.dtype([("key", "<i8"), ("id", "<i8"), ("band", "<i8")])
PAIR_ROW = np.dtype([("first", "<i8"), ("second", "<i8"), ("band", "<i8")])


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
    """Signatures under integer ids, banded in an on-disk table, asked one signature at a time which earlier one it
    is a near-duplicate of (the merge's drop_near_duplicates)."""

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


class NearDuplicatePairs:
    """Every near-duplicate pair among many signatures (the split's leakage certificate), found by sorting rather
    than by lookups: each signature's band keys are spilled to disk partitioned by key (src/core/spill.py), and each
    partition is sorted so that ids sharing a key sit together. The pairs of each such group are scored a batch at
    a time, and a pair is counted in the first band its signatures share, so a pair found in several bands is
    yielded once without keeping the pairs seen. Signatures wait in a sparse temporary file, the one of id i at i
    times its size, read back once per batch. Memory stays flat, however many records share a band (prompts made
    from a few templates do); the work grows with the candidate pairs."""

    def __init__(self, params: NearDuplicateParams, records: int) -> None:
        """``records``: about how many signatures will be added (sizes the spill files)."""
        self.params = params
        self._row_bytes = params.permutations * np.dtype(np.uint32).itemsize
        self._signatures = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by close()
        self._bands = SpillPartitions(BAND_ROW, records * params.bands)

    def add(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Add signature ``rows`` (uint32) under ``ids`` (new ids only, non-negative)."""
        file = self._signatures.fileno()
        for ident, row in zip(ids, rows, strict=True):
            os.pwrite(file, row.tobytes(), ident * self._row_bytes)
        banded = np.empty((len(rows), self.params.bands), dtype=BAND_ROW)
        banded["key"] = band_keys(rows, self.params)
        banded["id"] = np.asarray(ids, dtype=np.int64).reshape(-1, 1)
        banded["band"] = np.arange(self.params.bands)
        flat = banded.ravel()
        self._bands.add(flat, flat["key"].view(np.uint64))

    def pairs(self) -> Iterator[tuple[int, int, float]]:
        """Every near-duplicate pair (a, b, similarity) of distinct ids, a < b, each once, in no particular order;
        call after the last add()."""
        for rows in self._bands.partitions():
            for candidates in _shared_key_pairs(rows[np.lexsort((rows["id"], rows["key"]))]):
                for start in range(0, len(candidates), SCORE_BATCH):
                    yield from self._near(candidates[start:start + SCORE_BATCH])

    def _signature_rows(self, ids: Sequence[int]) -> np.ndarray:
        file, size = self._signatures.fileno(), self._row_bytes
        return np.frombuffer(b"".join([os.pread(file, size, ident * size) for ident in ids]),
                             dtype=np.uint32).reshape(len(ids), -1)

    def _near(self, candidates: np.ndarray) -> Iterator[tuple[int, int, float]]:
        """The near-duplicate pairs among PAIR_ROW ``candidates`` that were found in the first band their
        signatures share, scored in one numpy comparison (each signature read once)."""
        count = len(candidates)
        ids, at = np.unique(np.concatenate((candidates["first"], candidates["second"])), return_inverse=True)
        signature_rows = self._signature_rows(ids.tolist())
        keys = band_keys(signature_rows, self.params)  # equal bands, compared as candidates were found
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shared_key_pairs(rows: np.ndarray) -> Iterator[np.ndarray]:
    """The (first, second, band) id pairs, first < second, of BAND_ROW ``rows`` sorted by key then id that share a
    key in the same band, at most PAIRS_PER_BATCH at a time (but all of one row's at once)."""
    if not len(rows):
        return
    new_key = np.ones(len(rows), dtype=bool)
    new_key[1:] = rows["key"][1:] != rows["key"][:-1]
    group_ends = np.append(np.flatnonzero(new_key)[1:], len(rows))
    # Row i pairs with the rows after it in its group: ends[i] - i - 1 of them.
    partners = np.repeat(group_ends, np.diff(np.append(np.flatnonzero(new_key), len(rows)))) - np.arange(len(rows)) - 1
    having = np.flatnonzero(partners)
    cumulative = np.cumsum(partners[having])
    start = 0
    while start < len(having):
        stop = max(int(np.searchsorted(cumulative, (cumulative[start - 1] if start else 0) + PAIRS_PER_BATCH,
                                       side="right")), start + 1)
        batch_rows, counts = having[start:stop], partners[having[start:stop]]
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        seconds = np.repeat(batch_rows + 1, counts) + np.arange(int(counts.sum())) - offsets
        firsts = np.repeat(batch_rows, counts)
        pairs = np.empty(len(seconds), dtype=PAIR_ROW)
        pairs["first"], pairs["second"], pairs["band"] = rows["id"][firsts], rows["id"][seconds], rows["band"][seconds]
        # Keys of different bands may collide (their hash mixes in the band number weakly): a pair shares a band.
        yield pairs[(pairs["first"] < pairs["second"]) & (rows["band"][firsts] == pairs["band"])]
        start = stop


class NearDuplicateFilter:
    """The merge's drop_near_duplicates: per prompt, in order, whether to keep it (no earlier kept prompt is a
    near-duplicate of it); the kept ones are indexed."""

    def __init__(self, params: NearDuplicateParams) -> None:
        self.params = params
        self._index = NearDuplicateIndex(params)
        self._kept = 0

    def keep(self, prompts: Sequence[str]) -> np.ndarray:
        keep = np.ones(len(prompts), dtype=bool)
        for number, row in enumerate(signatures(prompts, self.params)):
            if self._index.similar_to(row) is not None:
                keep[number] = False
                continue
            self._index.add([self._kept], row.reshape(1, -1))
            self._kept += 1
        return keep

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._index.close()
