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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from src.certificate.ngrams import ngram_hashes
from src.core.config import ContaminationParams
from src.core.errors import DatasetError
from src.sources.readers import iter_source_file

CHUNK_ITEMS = 10_000  # evaluation items hashed at a time
TEXT_CHUNK_RECORDS = 512  # shard records hashed at a time: keeps the split's peak memory low and flat


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

    def contaminated(self, shard_lines: bytes) -> np.ndarray:
        """Per shard line of ``shard_lines`` (one after another): whether its instruction or output has an n-gram of
        the evaluation files. TEXT_CHUNK_RECORDS are hashed at a time: hashing holds about 24 bytes per character."""
        lines = shard_lines.split(b"\n")[:-1]
        found = np.zeros(len(lines), dtype=bool)
        for start in range(0, len(lines) if self.files else 0, TEXT_CHUNK_RECORDS):
            texts: list[str] = []
            for line in lines[start:start + TEXT_CHUNK_RECORDS]:
                fields = orjson.loads(line)
                texts += (fields["instruction"], fields["output"])
            shared = self.shared(texts)
            found[start:start + len(shared) // 2] = shared[0::2] | shared[1::2]
        return found

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
