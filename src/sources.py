"""Turn a source spec (path, pinned url, or built-in sample) into a stream of validated records."""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from .errors import DatasetError
from .jsonl import atomic_file
from .params import SourceSpec
from .records import CHUNK_BYTES, iter_source_file, iter_validated
from .sample import sample_records

DOWNLOAD_TIMEOUT_SECONDS = 60


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(spec: SourceSpec, downloads: Path) -> Path:
    """Fetch a pinned url once into ``downloads`` (named by its checksum) and verify it."""
    algorithm, expected = spec.pin
    target = downloads / f"{algorithm}-{expected}"
    if target.is_file() and file_digest(target, algorithm) == expected:
        return target
    where = f"raw.sources.{spec.name}"
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, \
                atomic_file(target) as stream:
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                stream.write(chunk)
            if digest.hexdigest() != expected:
                raise DatasetError(
                    f"{where}: {spec.url} has {algorithm} {digest.hexdigest()} but params pin {expected}; "
                    f"if the file changed on purpose, update {where}.{algorithm}"
                )
    except urllib.error.HTTPError as error:
        raise DatasetError(f"{where}: cannot download {spec.url} (HTTP {error.code} {error.reason}); "
                           "check the url") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise DatasetError(f"{where}: cannot download {spec.url} ({reason}); check the network or the url, "
                           "or use a path: source") from None
    return target


def source_records(spec: SourceSpec, downloads: Path) -> Iterator[dict]:
    """Validated canonical records of one source, streamed."""
    if spec.sample is not None:
        values = ((f"sample '{spec.name}' record {n}", record)
                  for n, record in enumerate(sample_records(spec.sample.records, spec.sample.seed), 1))
    else:
        if spec.path is not None:
            values = iter_source_file(Path(spec.path))
        else:
            values = iter_source_file(download(spec, downloads), name=spec.url)
    return iter_validated(values, spec.name, spec.fields, spec.number_records)


def check_declared(specs: tuple[SourceSpec, ...], declared_deps: list[str]) -> None:
    """Every path: source must be a dep of the raw stage, or `dvc repro` would miss its edits."""
    declared = {os.path.normpath(dep) for dep in declared_deps}
    for spec in specs:
        if spec.path is not None and os.path.normpath(spec.path) not in declared:
            raise DatasetError(
                f"raw.sources.{spec.name}.path {spec.path} is not a dep of the raw stage; add '- {spec.path}' "
                "to stages.raw.deps in dvc.yaml so that dvc repro notices when the file changes"
            )
