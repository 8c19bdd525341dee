"""Stage raw: write each source as canonical, validated JSON Lines under data/raw/.

Usage: python3 -m src.raw PARAMS DVC_YAML DOWNLOADS OUT_DIR
OUT_DIR gets NAME.jsonl (record lines, src/records/lines.py) and its record index NAME.npy (src/records/index.py) per
source, and sources.json, their order for merge. Each record is encoded and hashed here once, for every later stage.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

from src.core.config import PathSource, SampleSource, SourceSpec, UrlSource, load_params
from src.core.deps import check_declared, stage_deps
from src.core.errors import expect_args, run_cli
from src.core.progress import record_progress
from src.core.schema import RAW_MANIFEST
from src.output.files import atomic_directory, durable, write_behind, write_json
from src.records.index import RecordIndexWriter
from src.sources.encode import EncodedBatch, Workers
from src.sources.fetch import source_batches


def write_source(batches: Iterable[EncodedBatch], lines_path: Path, index_path: Path, description: str = "") -> int:
    """Write encoded ``batches`` to ``lines_path`` and their index to ``index_path``, both flushed to disk (in an
    atomic_directory()); return the number of records. The index is written last, when its with block ends."""
    with lines_path.open("wb") as file, durable(file), RecordIndexWriter(index_path) as index, \
            write_behind(file) as stream, record_progress(description) as bar:
        for batch in batches:
            stream.write(batch.block)
            index.add(batch.rows, len(batch.block))
            bar.update(len(batch))
    return index.count


def provenance(spec: SourceSpec, sha256: str) -> dict[str, object]:
    """Where a source's records came from, for the dataset card: the file and its sha256 (of the bytes read), the
    pinned url, or the sample's size and seed."""
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
    # A JSON Lines file is read on workers (src/sources/encode.py), forked now, before any thread starts.
    files = any(not isinstance(spec.origin, SampleSource) for spec in specs)
    with atomic_directory(Path(out_dir)) as staging, Workers() if files else nullcontext() as workers:
        for spec in specs:
            sha256 = hashlib.sha256()
            count = write_source(source_batches(spec, Path(downloads), workers, sha256), staging / f"{spec.name}.jsonl",
                                 staging / f"{spec.name}.npy", f"raw {spec.name}")
            manifest[spec.name] = {"kind": spec.kind, "records": count, "license": spec.license,
                                   **provenance(spec, sha256.hexdigest())}
        write_json(staging / RAW_MANIFEST, {"sources": manifest})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
