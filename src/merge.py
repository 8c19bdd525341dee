"""Stage merge (the "merged-16k"): concatenate the raw sources in order into one JSON Lines file.

Usage: python3 -m src.merge PARAMS RAW_DIR MERGED_OUT RECORD_INDEX_OUT PROVENANCE_OUT METRICS_OUT
PROVENANCE_OUT records the sources (where each came from, its license, records read and kept) and the merge
params, for the dataset card the split writes.
Every record gets a new contiguous index ("0", "1", ...; its line number) and keeps its provenance (`source`,
`source_index`). RECORD_INDEX_OUT gets one row per merged record (src/record_index.py) for the split.
Exact duplicates (same instruction, input and output, i.e. the same shard line) are counted, and dropped only
when merge.drop_duplicates is true. With merge.drop_near_duplicates, a record whose instruction and input are a
near-duplicate of an earlier kept record's (src/near_duplicates.py, params near_duplicates) is dropped and counted.
Raw and merged lines hold each record's shard line as it will be published (src/jsonl.py), so the merge compares
and copies those bytes and parses only the near-duplicate check's text.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError, expect_args, run_cli
from .jsonl import atomic_file, iter_lines, join_record_line, prompt_bytes, prompt_fields, split_record_line, write_json
from .near_duplicates import NearDuplicateIndex, prompt_text, signatures
from .params import NearDuplicateParams, load_params
from .progress import counted_lines, line_progress
from .record_index import RecordIndexWriter
from .schema import CATEGORY_CODES, RAW_MANIFEST
from .seen import SeenSet, digest
from .spill import RepeatCounter
from .stats import CHUNK_RECORDS, RecordStats

WRITE_CHUNK_LINES = 4096
CHECK_CHUNK_RECORDS = 4096  # records checked against the duplicate sets at a time


@dataclass
class DuplicateCounts:
    exact: int = 0  # records whose instruction, input and output appeared before
    same_prompt: int = 0  # records whose instruction and input appeared before (includes exact)
    dropped: int = 0
    near_dropped: int = 0  # records dropped as near-duplicates of an earlier kept record


def _parsed_chunks(sources: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[tuple[str, list[tuple[dict, bytes]]]]:
    """(source, [(raw head, shard line), ...]) of CHECK_CHUNK_RECORDS raw lines at a time."""
    for source, raw_lines in sources:
        raw_lines = iter(raw_lines)
        while chunk := [split_record_line(line) for line in itertools.islice(raw_lines, CHECK_CHUNK_RECORDS)]:
            yield source, chunk


def _counted(sources: Iterable[tuple[str, Iterable[bytes]]], counts: DuplicateCounts,
             records: int) -> Iterator[tuple[str, dict, bytes, bytes]]:
    """Every record, exact and same-prompt duplicates counted once all are read: the digests are spilled and the
    repeats counted at the end (src/spill.py), with no lookup per record."""
    with RepeatCounter(records) as line_repeats, RepeatCounter(records) as prompt_repeats:
        for source, chunk in _parsed_chunks(sources):
            prompt_digests = [digest(prompt_bytes(shard)) for _, shard in chunk]
            prompt_repeats.add_digests(prompt_digests)
            line_repeats.add_digests([digest(shard) for _, shard in chunk])
            for (raw_head, shard), prompt_digest in zip(chunk, prompt_digests, strict=True):
                yield source, raw_head, shard, prompt_digest
        counts.exact, counts.same_prompt = line_repeats.repeats(), prompt_repeats.repeats()


def _deduplicated(sources: Iterable[tuple[str, Iterable[bytes]]],
                  counts: DuplicateCounts) -> Iterator[tuple[str, dict, bytes, bytes]]:
    """Every record but exact duplicates of earlier ones, which are counted and dropped. Dropping needs to know,
    record by record, whether one was seen before: the on-disk duplicate sets are asked a chunk at a time."""
    with SeenSet() as lines, SeenSet() as prompts:
        for source, chunk in _parsed_chunks(sources):
            prompt_digests = [digest(prompt_bytes(shard)) for _, shard in chunk]
            new_prompts = prompts.add_digests(prompt_digests)
            new_lines = lines.add_all([shard for _, shard in chunk])
            for (raw_head, shard), prompt_digest, new_prompt, new_line in zip(
                    chunk, prompt_digests, new_prompts, new_lines, strict=True):
                counts.same_prompt += not new_prompt
                if new_line:
                    yield source, raw_head, shard, prompt_digest
                else:
                    counts.exact += 1
                    counts.dropped += 1


def _without_near_duplicates(records: Iterator[tuple[str, dict, bytes, bytes]], params: NearDuplicateParams,
                             counts: DuplicateCounts) -> Iterator[tuple[str, dict, bytes, bytes]]:
    """``records`` less each near-duplicate of an earlier kept one; signed a chunk at a time."""
    kept = 0
    with NearDuplicateIndex(params) as index:
        while chunk := list(itertools.islice(records, CHUNK_RECORDS)):
            rows = signatures([prompt_text(prompt_fields(prompt_bytes(shard))) for _, _, shard, _ in chunk], params)
            for record, row in zip(chunk, rows, strict=True):
                if index.similar_to(row) is not None:
                    counts.near_dropped += 1
                    continue
                index.add([kept], row.reshape(1, -1))
                kept += 1
                yield record


def merge_lines(sources: Iterable[tuple[str, Iterable[bytes]]], drop_duplicates: bool, counts: DuplicateCounts,
                near_duplicates: NearDuplicateParams | None = None,
                records: int = 0) -> Iterator[tuple[dict, bytes, bytes]]:
    """(head, shard line, prompt digest) of each merged record, renumbered; ``counts`` is complete once they are
    all read. With ``near_duplicates``, near-duplicates of earlier kept records are dropped. ``records``: about how
    many the sources hold (sizes the spill files)."""
    kept = _deduplicated(sources, counts) if drop_duplicates else _counted(sources, counts, records)
    if near_duplicates is not None:
        kept = _without_near_duplicates(kept, near_duplicates, counts)
    for number, (source, raw_head, shard, prompt_digest) in enumerate(kept):
        yield {"index": str(number), "category": raw_head["category"], "source": source,
               "source_index": raw_head["index"], "chars": raw_head["chars"]}, shard, prompt_digest


def write_merged(records: Iterable[tuple[dict, bytes, bytes]], merged: Path, record_index: Path,
                 stats: RecordStats) -> dict[str, int]:
    """Write the merge_lines() ``records`` to the merged file and its record index, counting them in ``stats``;
    return how many records of each source were written."""
    per_source: dict[str, int] = {}
    records = iter(records)
    with RecordIndexWriter(record_index) as index, atomic_file(merged) as stream:
        while chunk := list(itertools.islice(records, WRITE_CHUNK_LINES)):
            lines = [join_record_line(head, shard) for head, shard, _ in chunk]
            stream.write(b"".join(lines))
            categories = [CATEGORY_CODES[head["category"]] for head, _, _ in chunk]
            chars = [head["chars"] for head, _, _ in chunk]
            stats.add(categories, chars)
            index.add(lines, [shard for _, shard, _ in chunk], categories, chars, [prompt for _, _, prompt in chunk])
            for head, _, _ in chunk:
                per_source[head["source"]] = per_source.get(head["source"], 0) + 1
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
        sources = ((name, counted_lines(iter_lines(path), bar)) for name, path in raw_files.items())
        records = merge_lines(sources, params.drop_duplicates, counts, near_duplicates,
                              sum(source["records"] for source in manifest.values()))
        per_source = write_merged(records, Path(merged_out), Path(record_index_out), stats)
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
