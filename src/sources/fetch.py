"""A source spec (a path, a pinned url or the built-in sample) as its validated records; pinned downloads."""
from __future__ import annotations

import functools
import hashlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from src.core.config import PathSource, SampleSource, SourceSpec, UrlSource
from src.core.errors import DatasetError
from src.output.files import atomic_file
from src.sources.encode import EncodedBatch, Workers, encoded_batches, json_lines_batches
from src.sources.readers import (
    CHUNK_BYTES,
    Digest,
    Located,
    SourceCheck,
    Values,
    iter_json_array,
    iter_source_file,
    iter_validated,
    opened_source,
)
from src.sources.sample import sample_records

DOWNLOAD_TIMEOUT_SECONDS = 60


def download(name: str, source: UrlSource, downloads: Path) -> Path:
    """Fetch a pinned url once into ``downloads`` (named by its checksum) and verify it; a fault of the network and
    one of this machine (a full disk, say) each name what failed."""
    algorithm, expected = source.algorithm, source.digest
    target = downloads / f"{algorithm}-{expected}"
    if target.is_file():
        with target.open("rb") as file:
            if hashlib.file_digest(file, algorithm).hexdigest() == expected:
                return target
    where = f"raw.sources.{name}"
    digest = hashlib.new(algorithm)
    try:
        with atomic_file(target) as stream:
            for chunk in _body(where, source.url):
                digest.update(chunk)
                stream.write(chunk)
            if digest.hexdigest() != expected:
                raise DatasetError(f"{where}: {source.url} has {algorithm} {digest.hexdigest()} but params pin "
                                   f"{expected}; if the file changed on purpose, update {where}.{algorithm}")
    except OSError as error:  # raised by this machine: creating, writing or renaming the download
        raise DatasetError(f"{where}: cannot save the download to {target} ({error.strerror or error}); "
                           "free some disk space or check that the directory is writable") from None
    return target


def _body(where: str, url: str) -> Iterator[bytes]:
    """The body of ``url``, a chunk at a time; a fault of the network or the server is a DatasetError."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            while chunk := response.read(CHUNK_BYTES):
                yield chunk
    except urllib.error.HTTPError as error:
        raise DatasetError(f"{where}: cannot download {url} (HTTP {error.code} {error.reason}); check the url") \
            from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise DatasetError(f"{where}: cannot download {url} ({reason}); check the network or the url, or use a path: "
                           "source") from None


def _source_file(spec: SourceSpec, downloads: Path) -> tuple[Path, str]:
    """The file of a path or url source, and what errors call it."""
    match spec.origin:
        case PathSource(path):
            return Path(path), path
        case UrlSource() as source:
            return download(spec.name, source, downloads), source.url
    raise AssertionError(f"not a file: {spec.origin!r}")


def source_records(spec: SourceSpec, downloads: Path) -> Iterator[dict]:
    """The validated records of one source, read in this process: what source_batches() encodes."""
    values: Values
    if isinstance(spec.origin, SampleSource):
        values = functools.partial(_sample_values, spec.name, spec.origin)
    else:
        values = functools.partial(iter_source_file, *_source_file(spec, downloads))
    return iter_validated(values(), spec.name, spec.fields, spec.number_records, reread=values)


def _sample_values(name: str, sample: SampleSource) -> Iterator[Located]:
    return ((f"sample '{name}' record {number}", record)
            for number, record in enumerate(sample_records(sample.records, sample.seed), 1))


def source_batches(spec: SourceSpec, downloads: Path, workers: Workers | None,
                   digest: Digest | None = None) -> Iterator[EncodedBatch]:
    """source_records() encoded a batch at a time: a JSON Lines file on ``workers``, anything else here; a file's
    bytes also feed ``digest``."""
    if isinstance(spec.origin, SampleSource):
        yield from encoded_batches(source_records(spec, downloads))
        return
    path, name = _source_file(spec, downloads)
    reread = functools.partial(iter_source_file, path, name)
    with opened_source(path, name) as (stream, json_lines):
        if not json_lines:  # read here, from the stream already open
            yield from encoded_batches(iter_validated(iter_json_array(stream, name, digest), spec.name, spec.fields,
                                                      spec.number_records, reread=reread))
            return
        assert workers is not None, "a JSON Lines file is read on workers"
        with SourceCheck(spec.name, spec.fields, reread) as check:
            for batch in json_lines_batches(path, stream, name, spec.fields, spec.number_records, workers, digest):
                check.add(len(batch), batch.index_digests)
                if batch.error is not None:
                    raise DatasetError(batch.error)
                yield batch
