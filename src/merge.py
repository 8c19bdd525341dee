"""Stage merge (the "merged-16k"): concatenate the raw sources in order into one JSON Lines file.

Usage: python3 -m src.merge PARAMS RAW_DIR MERGED_OUT METRICS_OUT
Every record gets a new contiguous index ("0", "1", ...) and keeps its provenance
(`source`, `source_index`); a merged line is that head, with the characters of each text field, followed by
the record's shard line fields (src/jsonl.py merged_line). Exact duplicates (same instruction, input and output, i.e. the
same shard line) are counted, and dropped only when merge.drop_duplicates is true.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import DatasetError, expect_args, run_cli
from .jsonl import SHARD_FIELDS, atomic_file, merged_line, read_jsonl, write_json
from .params import load_params
from .schema import RAW_MANIFEST
from .seen import SeenSet
from .stats import RecordStats

@dataclass
class DuplicateCounts:
    exact: int = 0  # records whose instruction, input and output appeared before
    same_prompt: int = 0  # records whose instruction and input appeared before (includes exact)
    dropped: int = 0


def merge_records(sources: Iterable[tuple[str, Iterable[dict]]], drop_duplicates: bool,
                  counts: DuplicateCounts) -> Iterator[dict]:
    """Merged records with new contiguous indexes; ``counts`` is filled in as they stream."""
    number = 0
    with SeenSet() as lines, SeenSet() as prompts:
        for source, records in sources:
            for record in records:
                prompt = (record["instruction"], record["input"])
                if not prompts.add(*prompt):
                    counts.same_prompt += 1
                if not lines.add(*prompt, record["output"]):
                    counts.exact += 1
                    if drop_duplicates:
                        counts.dropped += 1
                        continue
                yield {
                    "index": str(number),
                    "instruction": record["instruction"],
                    "input": record["input"],
                    "output": record["output"],
                    "category": record["category"],
                    "source": source,
                    "source_index": record["index"],
                }
                number += 1


def merged_head(record: dict) -> dict:
    """What the split needs of a record besides its shard line: provenance, category and text lengths."""
    return {"index": record["index"], "category": record["category"], "source": record["source"],
            "source_index": record["source_index"], "chars": [len(record[field]) for field in SHARD_FIELDS]}


def read_manifest(raw_dir: Path) -> dict:
    try:
        return json.loads((raw_dir / RAW_MANIFEST).read_text(encoding="utf-8"))["sources"]
    except (OSError, ValueError, KeyError):
        raise DatasetError(f"{raw_dir / RAW_MANIFEST}: missing or unreadable; run the raw stage (dvc repro raw)") from None


def main(argv: Sequence[str]) -> None:
    params_path, raw_dir, merged_out, metrics_out = expect_args(
        argv, ("PARAMS", "RAW_DIR", "MERGED_OUT", "METRICS_OUT"), "src.merge")
    params = load_params(Path(params_path)).merge
    manifest = read_manifest(Path(raw_dir))
    for name in manifest:
        if not (Path(raw_dir) / f"{name}.jsonl").is_file():
            raise DatasetError(f"{Path(raw_dir) / name}.jsonl: missing; run the raw stage (dvc repro raw)")
    counts = DuplicateCounts()
    stats = RecordStats()
    per_source = {name: 0 for name in manifest}
    sources = ((name, read_jsonl(Path(raw_dir) / f"{name}.jsonl")) for name in manifest)
    with atomic_file(Path(merged_out)) as stream:
        for record in merge_records(sources, params.drop_duplicates, counts):
            stream.write(merged_line(merged_head(record), record))
            stats.add(record)
            per_source[record["source"]] += 1
    write_json(Path(metrics_out), {
        **stats.summary(),
        "sources": per_source,
        "duplicates": {"exact": counts.exact, "same_prompt": counts.same_prompt, "dropped": counts.dropped},
    })


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
