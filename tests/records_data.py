"""Raw and merged data written as the raw and merge stages write them, from record dicts, for unit tests of the
stages after them. An ordinary module for tests to import."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from src.merge import RawChunk, write_merged
from src.raw import encode_records
from src.stats import RecordStats


def raw_chunk(source: str, records: Sequence[dict]) -> RawChunk:
    """The raw records of ``records`` (validated dicts) of source ``source``, as the merge reads them."""
    lines, rows = encode_records(records)
    return RawChunk(source, lines, rows)


def write_merged_records(work: Path, records: Iterable[dict], source: str = "s") -> None:
    """merged.jsonl and its record index records.npy in ``work``, of ``records`` (one source, renumbered from 0)."""
    write_merged([raw_chunk(source, list(records))], work / "merged.jsonl", work / "records.npy", RecordStats())
