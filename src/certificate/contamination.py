"""Contamination: shard records whose instruction or output shares a long character n-gram (contamination.ngram
characters; 13 is the common choice) with an item of an evaluation file named in params.yaml.

An evaluation file is a JSON array or JSON Lines (read like a source, src/sources/readers.py); an item's text is
the item itself when it is a string, or every string value of an object (question, answer, choices written out as
strings, ...). Its n-grams are hashed to 64 bits (src/certificate/ngrams.py) and kept in the split's scratch
database, out of memory past its limit. Two different n-grams share a hash with odds of about one in 2**64 per
pair.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import orjson

from src.certificate.ngrams import ngram_hashes
from src.core.config import ContaminationParams
from src.core.errors import DatasetError
from src.core.scratch import insert, registered
from src.sources.readers import iter_source_file

CHUNK_ITEMS = 10_000  # evaluation items hashed at a time
TEXT_CHUNK_RECORDS = 512  # shard records hashed at a time: keeps the split's peak memory low and flat
EVAL_NGRAMS = "eval_ngrams"  # the table of the evaluation files' distinct n-gram hashes


def item_texts(item: object) -> list[str]:
    """The text of an evaluation item: the item itself, or the string values of an object."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, dict):
        return [value for value in item.values() if isinstance(value, str)]
    return []


@dataclass(frozen=True)
class EvalSet:
    """What was read of each evaluation file, and their distinct n-gram hashes in table EVAL_NGRAMS of ``database``
    (a scratch database: DuckDB joins a chunk's n-grams with them, faster than numpy's binary search, and keeps them
    out of memory past its limit)."""

    ngram: int
    files: dict[str, dict]
    database: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def none(cls) -> EvalSet:
        """No evaluation files: nothing is contaminated."""
        return cls(ContaminationParams.ngram, {})

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
        found = np.zeros(len(texts), dtype=bool)
        if self.database is None:
            return found
        hashes, offsets = ngram_hashes(texts, self.ngram, short_whole=False)
        texts_of = np.repeat(np.arange(len(texts)), np.diff(offsets).astype(np.int64))
        with registered(self.database, "grams", {"hash": hashes, "text": texts_of}):
            found[self.database.execute(f"SELECT DISTINCT text FROM grams SEMI JOIN {EVAL_NGRAMS} USING (hash)")
                  .fetchnumpy()["text"]] = True
        return found


def _file_ngrams(database: duckdb.DuckDBPyConnection, number: int, name: str, path: Path, ngram: int) -> dict:
    """Add the n-gram hashes of evaluation file ``path`` to table file_ngrams as file ``number``; what was read."""
    digest = hashlib.sha256()
    items = 0
    texts: list[str] = []
    for _, item in iter_source_file(path, digest=digest):
        texts.extend(item_texts(item))
        items += 1
        if len(texts) >= CHUNK_ITEMS:
            _add_ngrams(database, number, texts, ngram)
            texts = []
    _add_ngrams(database, number, texts, ngram)
    [(ngrams,)] = database.execute("SELECT count(DISTINCT hash) FROM file_ngrams WHERE file = ?", [number]).fetchall()
    if not ngrams:
        raise DatasetError(f"{path}: no text of {ngram} characters or more in its {items} items (contamination.eval."
                           f"{name}); check the file, or lower contamination.ngram")
    return {"path": str(path), "sha256": digest.hexdigest(), "items": items, "ngrams": ngrams}


def _add_ngrams(database: duckdb.DuckDBPyConnection, number: int, texts: Sequence[str], ngram: int) -> None:
    hashes = np.unique(ngram_hashes(texts, ngram, short_whole=False)[0])
    insert(database, "file_ngrams", {"file": np.full(len(hashes), number, dtype=np.int32), "hash": hashes})


def load_eval_set(params: ContaminationParams, database: duckdb.DuckDBPyConnection) -> EvalSet:
    """The evaluation files of ``params`` read into ``database``."""
    if not params.eval_files:
        return EvalSet.none()
    database.execute("CREATE TABLE file_ngrams (file INTEGER, hash UBIGINT)")
    files = {}
    for number, (name, path) in enumerate(params.eval_files):
        if not Path(path).is_file():
            raise DatasetError(f"{path}: evaluation file not found (contamination.eval.{name}); create it or "
                               "remove it from params.yaml")
        files[name] = _file_ngrams(database, number, name, Path(path), params.ngram)
    database.execute(f"CREATE TABLE {EVAL_NGRAMS} AS SELECT DISTINCT hash FROM file_ngrams; DROP TABLE file_ngrams")
    return EvalSet(params.ngram, files, database)
