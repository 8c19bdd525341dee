"""Contamination: shard records whose instruction or output shares a long character n-gram (contamination.ngram
characters; 13 is the common choice) with an item of an evaluation file named in params.yaml.

An evaluation file is a JSON array or JSON Lines (read like a source, src/sources/readers.py); an item's text is
the item itself when it is a string, or every string value of an object (question, answer, choices written out as
strings, ...). Its n-grams are hashed to 64 bits (src/certificate/ngrams.py) and kept sorted: their number is the
size of the evaluation data, not of the dataset. Two different n-grams share a hash with odds of about one in 2**64
per pair.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from src.certificate.ngrams import ngram_hashes
from src.core.config import ContaminationParams
from src.core.errors import DatasetError
from src.sources.readers import iter_source_file

CHUNK_ITEMS = 10_000
INDEX = np.dtype("<i8")  # a contaminated record's merged index, as the temporary file holds it
INDEX_CHUNK = 1 << 16  # indices read back at a time


def item_texts(item: object) -> list[str]:
    """The text of an evaluation item: the item itself, or the string values of an object."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, dict):
        return [value for value in item.values() if isinstance(value, str)]
    return []


@dataclass(frozen=True)
class EvalSet:
    """The distinct n-gram hashes of the evaluation files, sorted, and what was read of each file."""

    ngram: int
    hashes: np.ndarray
    files: dict[str, dict]

    @classmethod
    def none(cls) -> EvalSet:
        """No evaluation files: nothing is contaminated."""
        return cls(ContaminationParams.ngram, np.zeros(0, dtype=np.uint64), {})

    def shared(self, texts: Sequence[str]) -> np.ndarray:
        """Per text: whether it has an n-gram of the evaluation files."""
        hashes, offsets = ngram_hashes(texts, self.ngram, short_whole=False)
        found = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        hit = self.hashes[found] == hashes
        seen = np.concatenate(([0], np.cumsum(hit)))
        return seen[offsets[1:]] > seen[offsets[:-1]]


def _file_hashes(name: str, path: Path, ngram: int, summary: dict) -> np.ndarray:
    digest = hashlib.sha256()
    parts: list[np.ndarray] = []
    texts: list[str] = []
    items = 0
    for _, item in iter_source_file(path, digest=digest):
        texts.extend(item_texts(item))
        items += 1
        if len(texts) >= CHUNK_ITEMS:
            parts.append(np.unique(ngram_hashes(texts, ngram, short_whole=False)[0]))
            texts = []
    parts.append(np.unique(ngram_hashes(texts, ngram, short_whole=False)[0]))
    hashes = np.unique(np.concatenate(parts))
    if not len(hashes):
        raise DatasetError(f"{path}: no text of {ngram} characters or more in its {items} items (contamination.eval."
                           f"{name}); check the file, or lower contamination.ngram")
    summary.update({"path": str(path), "sha256": digest.hexdigest(), "items": items, "ngrams": len(hashes)})
    return hashes


def load_eval_set(params: ContaminationParams) -> EvalSet:
    files: dict[str, dict] = {}
    parts: list[np.ndarray] = [np.zeros(0, dtype=np.uint64)]
    for name, path in params.eval_files:
        if not Path(path).is_file():
            raise DatasetError(f"{path}: evaluation file not found (contamination.eval.{name}); create it or "
                               "remove it from params.yaml")
        files[name] = {}
        parts.append(_file_hashes(name, Path(path), params.ngram, files[name]))
    return EvalSet(params.ngram, np.unique(np.concatenate(parts)), files)


class ContaminationTally:
    """The merged indices, per shard, of the records that share an n-gram with the evaluation files, appended to a
    temporary file as they are found (shards come one after another, as write_shards() writes them), so memory
    stays flat however many there are."""

    def __init__(self, eval_set: EvalSet, shard_count: int, chunk_records: int) -> None:
        self.eval_set = eval_set
        self.counts = np.zeros(shard_count, dtype=np.int64)  # contaminated records per shard
        self._found = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by close()
        self._chunk_records = chunk_records
        self._pending: list[tuple[int, int, bytes]] = []
        self._shard = 0  # the shard being added

    @property
    def active(self) -> bool:
        """Whether there are evaluation files to check against."""
        return bool(self.eval_set.files)

    def add(self, shard: int, records: Sequence[int], shard_lines: Sequence[bytes]) -> None:
        """Check merged records ``records`` of shard number ``shard``, whose shard lines are ``shard_lines``."""
        if shard < self._shard:
            raise ValueError(f"shard {shard} added after shard {self._shard}: shards come in order")
        self._shard = shard
        if self.active:
            self._pending.extend(zip(itertools.repeat(shard), records, shard_lines, strict=False))
            if len(self._pending) >= self._chunk_records:
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        texts: list[str] = []
        for _, _, line in self._pending:
            fields = orjson.loads(line)
            texts += (fields["instruction"], fields["output"])
        by_text = self.eval_set.shared(texts)
        shared = np.logical_or(by_text[0::2], by_text[1::2])  # instruction or output
        shards = np.array([shard for shard, _, _ in self._pending], dtype=np.int64)
        records = np.array([record for _, record, _ in self._pending], dtype=INDEX)
        self._found.write(records[shared].tobytes())
        self.counts += np.bincount(shards[shared], minlength=len(self.counts))
        self._pending = []

    def indices(self, shard: int) -> Iterator[np.ndarray]:
        """The merged indices of the contaminated records of shard number ``shard``, INDEX_CHUNK at a time, in the
        order they were added; after flush()."""
        self._found.flush()
        start, stop = int(self.counts[:shard].sum()), int(self.counts[:shard + 1].sum())
        for at in range(start, stop, INDEX_CHUNK):
            count = min(INDEX_CHUNK, stop - at)
            yield np.frombuffer(os.pread(self._found.fileno(), count * INDEX.itemsize, at * INDEX.itemsize),
                                dtype=INDEX)

    def close(self) -> None:
        self._found.close()
