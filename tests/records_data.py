"""Raw and merged data written as the raw and merge stages write them, from record dicts, for unit tests of the
stages after them. An ordinary module for tests to import."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import orjson

from src.raw import write_source
from src.records.index import line_lengths
from src.records.merging import DuplicateCounts, RawChunk, write_merged
from src.sources.encode import encode_records, encoded_batches


def record_line(head: Mapping[str, object], shard: bytes) -> bytes:
    """A record line by its definition (src/records/lines.py): ``head`` as orjson's compact JSON less its "}", then ", ",
    then the shard line ``shard`` less its "{"."""
    return orjson.dumps(head)[:-1] + b", " + shard[1:]


def digest16(data: bytes) -> bytes:
    """Some 16-byte digest, as the record indexes and duplicate sets keep them."""
    return hashlib.sha256(data).digest()[:16]


def raw_chunk(source: str, records: Sequence[dict], first: int = 0) -> RawChunk:
    """The raw records of ``records`` (validated dicts) of source ``source``, as the merge reads them."""
    lines, rows = encode_records(records)
    ends = np.cumsum(line_lengths(lines))
    return RawChunk(source, first, b"".join(lines), ends - line_lengths(lines), ends, rows)


def write_merged_records(work: Path, records: Iterable[dict], source: str = "s") -> None:
    """merged.jsonl and its record index records.npy in ``work``, of ``records`` (one source, renumbered from 0)."""
    write_merged([raw_chunk(source, list(records))], work / "merged.jsonl", work / "records.npy", DuplicateCounts())


def write_raw(directory: Path, sources: Sequence[tuple[str, Sequence[dict]]]) -> list[tuple[str, Path]]:
    """The raw files of ``sources`` (name, validated records) in ``directory``, as the raw stage writes them: (name,
    NAME.jsonl) of each, beside its record index NAME.npy."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, records in sources:
        write_source(encoded_batches(records), directory / f"{name}.jsonl", directory / f"{name}.npy")
    return [(name, directory / f"{name}.jsonl") for name, _ in sources]
