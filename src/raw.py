"""Stage raw: write each source as canonical, validated JSON Lines under data/raw/.

Usage: python3 -m src.raw PARAMS DVC_YAML DOWNLOADS OUT_DIR
OUT_DIR gets one NAME.jsonl per source (record lines, src/jsonl.py) plus sources.json, which records their order
for merge.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from .errors import expect_args, run_cli
from .jsonl import SHARD_FIELDS, atomic_directory, join_record_line, shard_line, write_json
from .params import PathSource, SampleSource, SourceSpec, UrlSource, load_params
from .progress import UPDATE_EVERY_LINES, record_progress
from .schema import RAW_MANIFEST
from .sources import source_records
from .stages import check_declared, stage_deps


def raw_line(record: dict) -> bytes:
    """A validated record as a record line: its index, category and the characters of each text field, then its
    shard line's fields, encoded once here for every later stage."""
    head = {"index": record["index"], "category": record["category"],
            "chars": [len(record[field]) for field in SHARD_FIELDS]}
    return join_record_line(head, shard_line(record))


def provenance(spec: SourceSpec, sha256: str) -> dict[str, object]:
    """Where a source's records came from, for the dataset card: the file and its sha256 (computed as the file was
    read), the pinned url, or the sample's size and seed."""
    match spec.origin:
        case PathSource(path):
            return {"path": path, "sha256": sha256}
        case UrlSource(url, algorithm, digest):
            return {"url": url, algorithm: digest}
        case SampleSource(records, seed):
            return {"sample_records": records, "seed": seed}
    raise AssertionError(f"unknown origin {spec.origin!r}")


def main(argv: Sequence[str]) -> None:
    params_path, dvc_yaml, downloads, out_dir = expect_args(argv, ("PARAMS", "DVC_YAML", "DOWNLOADS", "OUT_DIR"),
                                                            "src.raw")
    specs = load_params(Path(params_path)).raw.sources
    check_declared("raw", {f"raw.sources.{spec.name}.path": spec.origin.path for spec in specs
                           if isinstance(spec.origin, PathSource)}, stage_deps(Path(dvc_yaml), "raw"))
    manifest = {}
    with atomic_directory(Path(out_dir)) as staging:
        for spec in specs:
            count = 0
            digest = hashlib.sha256()
            with (staging / f"{spec.name}.jsonl").open("wb") as stream, \
                    record_progress(f"raw {spec.name}") as bar:
                for count, record in enumerate(source_records(spec, Path(downloads), digest), 1):
                    stream.write(raw_line(record))
                    if count % UPDATE_EVERY_LINES == 0:
                        bar.update(UPDATE_EVERY_LINES)
            manifest[spec.name] = {"kind": spec.kind, "records": count, "license": spec.license,
                                   **provenance(spec, digest.hexdigest())}
        write_json(staging / RAW_MANIFEST, {"sources": manifest})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
