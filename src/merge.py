"""Stage merge (the "merged-16k"): concatenate the raw sources in order into one JSON Lines file.

Usage: python3 -m src.merge PARAMS RAW_DIR MERGED_OUT RECORD_INDEX_OUT PROVENANCE_OUT METRICS_OUT
PROVENANCE_OUT records the sources (where each came from, its license, records read and kept) and the merge
params, for the dataset card the split writes.
Every record gets a new contiguous index ("0", "1", ...; its line number) and keeps its provenance (`source`,
`source_index`). RECORD_INDEX_OUT gets one row per merged record (src/records/index.py) for the split.
Exact duplicates (same instruction, input and output, i.e. the same shard line) are counted, and dropped only
when merge.drop_duplicates is true. With merge.drop_near_duplicates, a record whose instruction and input are a
near-duplicate of an earlier kept record's (src/certificate/near_duplicates.py, params near_duplicates) is dropped
and counted. Raw and merged lines hold each record's shard line as it will be published (src/records/lines.py), so
the merge compares
and copies those bytes and parses only the near-duplicate check's text.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from src.certificate.near_duplicates import NearDuplicateIndex, prompt_text, signatures
from src.core.config import NearDuplicateParams, load_params
from src.core.errors import DatasetError, expect_args, run_cli
from src.core.progress import counted_chunks, line_progress
from src.core.schema import RAW_MANIFEST
from src.core.seen import SeenSet
from src.core.spill import RepeatCounter
from src.output.files import atomic_file, write_behind, write_json
from src.records.index import RecordIndex, RecordIndexWriter, line_lengths
from src.records.lines import merged_head_start, prompt_bytes, prompt_fields
from src.records.stats import RecordStats

CHUNK_RECORDS = 4096  # raw records read, checked and written at a time


@dataclass(frozen=True)
class RawChunk:
    """Raw records of one source: their raw record lines in ``block`` (line i is block[starts[i]:ends[i]]; a chunk
    read from a raw file holds them one after another) and their record index rows."""
    source: str
    block: bytes | bytearray
    starts: np.ndarray
    ends: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return int((self.ends - self.starts).sum())

    def lines(self) -> list[bytes]:
        return [bytes(self.block[start:end])
                for start, end in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]

    def kept(self, keep: np.ndarray) -> RawChunk:
        """The records where ``keep`` (a boolean per record) is true."""
        return RawChunk(self.source, self.block, self.starts[keep], self.ends[keep], self.rows[keep])


@dataclass
class DuplicateCounts:
    exact: int = 0  # records whose instruction, input and output appeared before
    same_prompt: int = 0  # records whose instruction and input appeared before (includes exact)
    dropped: int = 0
    near_dropped: int = 0  # records dropped as near-duplicates of an earlier kept record


def raw_chunks(source: str, lines_path: Path, index_path: Path) -> Iterator[RawChunk]:
    """A raw source's records, CHUNK_RECORDS at a time, read where its record index says, each block checked
    against it."""
    with RecordIndex(index_path, stage="raw") as index:
        for part in index.blocks(lines_path, CHUNK_RECORDS):
            yield RawChunk(source, part.block, part.starts, part.ends, part.rows)


def _counted(chunks: Iterable[RawChunk], counts: DuplicateCounts, records: int) -> Iterator[RawChunk]:
    """Every record, exact and same-prompt duplicates counted once all are read: the digests are spilled and the
    repeats counted at the end (src/core/spill.py), with no lookup per record."""
    with RepeatCounter(records) as line_repeats, RepeatCounter(records) as prompt_repeats:
        for chunk in chunks:
            line_repeats.add_words(chunk.rows["line"])
            prompt_repeats.add_words(chunk.rows["prompt"])
            yield chunk
        counts.exact, counts.same_prompt = line_repeats.repeats(), prompt_repeats.repeats()


def _digests(words: np.ndarray) -> list[bytes]:
    """Rows of two 64-bit words as the 16-byte digests they were made of."""
    data = np.ascontiguousarray(words).tobytes()
    return [data[start:start + 16] for start in range(0, len(data), 16)]


def _deduplicated(chunks: Iterable[RawChunk], counts: DuplicateCounts) -> Iterator[RawChunk]:
    """Every record but exact duplicates of earlier ones, which are counted and dropped. Dropping needs to know,
    record by record, whether one was seen before: the on-disk duplicate sets are asked a chunk at a time."""
    with SeenSet() as lines, SeenSet() as prompts:
        for chunk in chunks:
            counts.same_prompt += prompts.add_digests(_digests(chunk.rows["prompt"])).count(False)
            new_lines = np.array(lines.add_digests(_digests(chunk.rows["line"])), dtype=bool)
            repeats = int(np.count_nonzero(~new_lines))
            counts.exact += repeats
            counts.dropped += repeats
            yield chunk.kept(new_lines)


def _shard_line(line: bytes, head: int) -> bytes:
    return b"{" + line[head + 2:]


def _without_near_duplicates(chunks: Iterable[RawChunk], params: NearDuplicateParams,
                             counts: DuplicateCounts) -> Iterator[RawChunk]:
    """``chunks`` less each near-duplicate of an earlier kept record; signed a chunk at a time."""
    kept = 0
    with NearDuplicateIndex(params) as index:
        for chunk in chunks:
            rows = signatures([prompt_text(prompt_fields(prompt_bytes(_shard_line(line, head))))
                               for line, head in zip(chunk.lines(), chunk.rows["head"].tolist(), strict=True)], params)
            keep = np.ones(len(chunk), dtype=bool)
            for number, row in enumerate(rows):
                if index.similar_to(row) is not None:
                    keep[number] = False
                    continue
                index.add([kept], row.reshape(1, -1))
                kept += 1
            counts.near_dropped += int(np.count_nonzero(~keep))
            yield chunk.kept(keep)


def merge_chunks(chunks: Iterable[RawChunk], drop_duplicates: bool, counts: DuplicateCounts,
                 near_duplicates: NearDuplicateParams | None = None, records: int = 0) -> Iterator[RawChunk]:
    """The raw records the merge keeps, a chunk at a time; ``counts`` is complete once they are all read. With
    ``near_duplicates``, near-duplicates of earlier kept records are dropped. ``records``: about how many the
    sources hold (sizes the spill files)."""
    kept = _deduplicated(chunks, counts) if drop_duplicates else _counted(chunks, counts, records)
    if near_duplicates is not None:
        kept = _without_near_duplicates(kept, near_duplicates, counts)
    return kept


def write_merged(chunks: Iterable[RawChunk], merged: Path, record_index: Path, stats: RecordStats) -> dict[str, int]:
    """Write the kept raw records ``chunks``, renumbered from 0 in order, to the merged file and its record index,
    counting them in ``stats``; return how many records of each source were written."""
    per_source: dict[str, int] = {}
    number = 0
    with RecordIndexWriter(record_index) as index, atomic_file(merged) as file, write_behind(file) as stream:
        for chunk in chunks:
            source = orjson.dumps(chunk.source)
            starts = chunk.starts.tolist()
            heads = [merged_head_start(at, source) for at in range(number, number + len(starts))]
            number += len(heads)
            with memoryview(chunk.block) as view:
                # Each merged line: its head's start, then the raw line after its "{".
                block = b"".join([part for head, start, end in zip(heads, starts, chunk.ends.tolist(), strict=True)
                                  for part in (head, view[start + 1:end])])
            lengths = line_lengths(heads) + (chunk.ends - chunk.starts - 1)
            stream.write(block)
            rows = chunk.rows.copy()
            rows["head"] = lengths - (chunk.ends - chunk.starts - rows["head"])  # the shard fields are the same
            rows["offset"] = np.cumsum(lengths) - lengths
            index.add(rows, len(block))
            stats.add(rows["category"], rows["chars"])
            per_source[chunk.source] = per_source.get(chunk.source, 0) + len(heads)
    return per_source


def read_manifest(raw_dir: Path) -> dict:
    try:
        return json.loads((raw_dir / RAW_MANIFEST).read_text(encoding="utf-8"))["sources"]
    except (OSError, ValueError, KeyError):
        raise DatasetError(f"{raw_dir / RAW_MANIFEST}: missing or unreadable; run the raw stage "
                           "(dvc repro raw)") from None


def main(argv: Sequence[str]) -> None:
    params_path, raw_dir, merged_out, record_index_out, provenance_out, metrics_out = expect_args(
        argv, ("PARAMS", "RAW_DIR", "MERGED_OUT", "RECORD_INDEX_OUT", "PROVENANCE_OUT", "METRICS_OUT"), "src.merge")
    all_params = load_params(Path(params_path))
    params = all_params.merge
    near_duplicates = all_params.near_duplicates if params.drop_near_duplicates else None
    manifest = read_manifest(Path(raw_dir))
    raw_files = {name: Path(raw_dir) / f"{name}.jsonl" for name in manifest}
    for path in raw_files.values():
        if not path.is_file():
            raise DatasetError(f"{path}: missing; run the raw stage (dvc repro raw)")
    counts = DuplicateCounts()
    stats = RecordStats()
    with line_progress(raw_files.values(), "merge") as bar:
        chunks = counted_chunks((chunk for name, path in raw_files.items()
                                 for chunk in raw_chunks(name, path, path.with_suffix(".npy"))), bar)
        kept = merge_chunks(chunks, params.drop_duplicates, counts, near_duplicates,
                            sum(source["records"] for source in manifest.values()))
        per_source = write_merged(kept, Path(merged_out), Path(record_index_out), stats)
    write_json(Path(provenance_out), {
        "sources": {name: {**source, "kept": per_source.get(name, 0)} for name, source in manifest.items()},
        "merge": {"drop_duplicates": params.drop_duplicates, "drop_near_duplicates": params.drop_near_duplicates},
    })
    write_json(Path(metrics_out), {
        **stats.summary(),
        "sources": {name: per_source.get(name, 0) for name in manifest},
        "duplicates": {"exact": counts.exact, "same_prompt": counts.same_prompt, "dropped": counts.dropped,
                       "near_dropped": counts.near_dropped},
    })


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
