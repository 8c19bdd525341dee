"""Stage merge: the raw sources, in order, as one JSON Lines file, renumbered, with provenance.

Usage: python3 -m src.merge PARAMS RAW_DIR MERGED_OUT RECORD_INDEX_OUT PROVENANCE_OUT METRICS_OUT
Every record gets a new index ("0", "1", ...: its line number) and keeps `source` and `source_index`;
RECORD_INDEX_OUT gets its record index row (src/records/index.py). Exact duplicates are counted, and dropped with
merge.drop_duplicates; with merge.drop_near_duplicates, near-duplicates of earlier kept records are dropped too.
PROVENANCE_OUT lists each source (origin, license, records read and kept) and the merge params, for the card.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from src.core.config import load_params
from src.core.errors import DatasetError, expect_args, run_cli
from src.core.progress import counted_chunks, line_progress
from src.core.schema import RAW_MANIFEST
from src.core.scratch import scratch_database
from src.output.files import write_json
from src.records.merging import merge_sources
from src.records.stats import summary


def read_manifest(raw_dir: Path) -> dict[str, dict]:
    """The raw sources in merge order, by name, as the raw stage listed them."""
    try:
        sources: dict[str, dict] = json.loads((raw_dir / RAW_MANIFEST).read_text(encoding="utf-8"))["sources"]
    except (OSError, ValueError, KeyError):
        raise DatasetError(f"{raw_dir / RAW_MANIFEST}: missing or unreadable; run the raw stage "
                           "(dvc repro raw)") from None
    for name in sources:
        if not (raw_dir / f"{name}.jsonl").is_file():
            raise DatasetError(f"{raw_dir / name}.jsonl: missing; run the raw stage (dvc repro raw)")
    return sources


def main(argv: Sequence[str]) -> None:
    params_path, raw_dir, merged, record_index, provenance_out, metrics_out = expect_args(
        argv, ("PARAMS", "RAW_DIR", "MERGED_OUT", "RECORD_INDEX_OUT", "PROVENANCE_OUT", "METRICS_OUT"), "src.merge")
    params = load_params(Path(params_path))
    sources = read_manifest(Path(raw_dir))
    files = [(name, Path(raw_dir) / f"{name}.jsonl") for name in sources]
    with scratch_database() as database, line_progress([path for _, path in files], "merge") as bar:
        result = merge_sources(database, files, Path(merged), Path(record_index), params.merge.drop_duplicates,
                               params.near_duplicates if params.merge.drop_near_duplicates else None,
                               partial(counted_chunks, bar=bar))
    kept_by_name = {name: result.kept[name] for name in sources}
    write_json(Path(provenance_out), {
        "sources": {name: {**source, "kept": kept_by_name[name]} for name, source in sources.items()},
        "merge": {"drop_duplicates": params.merge.drop_duplicates,
                  "drop_near_duplicates": params.merge.drop_near_duplicates},
    })
    write_json(Path(metrics_out), {**summary(result.stats.row()), "sources": kept_by_name,
                                   "duplicates": result.counts.__dict__})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
