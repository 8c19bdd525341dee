"""Turn a source spec (path, pinned url, or built-in sample) into a stream of validated records."""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from src.core.config import PathSource, SampleSource, SourceSpec, UrlSource
from src.core.errors import DatasetError
from src.output.files import atomic_file
from src.sources.encode import EncodedBatch, Workers, encoded_batches, json_lines_batches
from src.sources.readers import (
    CHUNK_BYTES,
    Digest,
    SourceCheck,
    iter_source_file,
    iter_validated,
    opened_source,
    read_values,
)
from src.sources.sample import sample_records

DOWNLOAD_TIMEOUT_SECONDS = 60


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, source: UrlSource, downloads: Path) -> Path:
    """Fetch a pinned url once into ``downloads`` (named by its checksum) and verify it.

    A network fault and a fault of this machine (a full disk, say) are told apart: each names what failed.
    """
    algorithm, expected = source.algorithm, source.digest
    target = downloads / f"{algorithm}-{expected}"
    if target.is_file() and file_digest(target, algorithm) == expected:
        return target
    where = f"raw.sources.{name}"
    digest = hashlib.new(algorithm)
    try:
        with atomic_file(target) as stream, _opened(where, source.url) as response:
            while chunk := _read(where, source.url, response):
                digest.update(chunk)
                stream.write(chunk)
            if digest.hexdigest() != expected:
                raise DatasetError(
                    f"{where}: {source.url} has {algorithm} {digest.hexdigest()} but params pin {expected}; "
                    f"if the file changed on purpose, update {where}.{algorithm}"
                )
    except OSError as error:  # raised by this machine: creating, writing or renaming the download
        raise DatasetError(f"{where}: cannot save the download to {target} ({error.strerror or error}); "
                           "free some disk space or check that the directory is writable") from None
    return target


def _network_error(where: str, url: str, error: Exception) -> DatasetError:
    if isinstance(error, urllib.error.HTTPError):
        return DatasetError(f"{where}: cannot download {url} (HTTP {error.code} {error.reason}); check the url")
    reason = getattr(error, "reason", None) or error
    return DatasetError(f"{where}: cannot download {url} ({reason}); check the network or the url, or use a path: "
                        "source")


@contextmanager
def _opened(where: str, url: str) -> Iterator[IO[bytes]]:
    try:
        response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise _network_error(where, url, error) from None
    with response:
        yield response


def _read(where: str, url: str, response: IO[bytes]) -> bytes:
    try:
        return response.read(CHUNK_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise _network_error(where, url, error) from None


def source_records(spec: SourceSpec, downloads: Path, digest: Digest | None = None) -> Iterator[dict]:
    """Validated canonical records of one source, streamed; a path source's bytes also feed ``digest``."""
    def values(feed: Digest | None = None) -> Iterator[tuple[str, object]]:
        match spec.origin:
            case SampleSource(records, seed):
                return ((f"sample '{spec.name}' record {n}", record)
                        for n, record in enumerate(sample_records(records, seed), 1))
            case PathSource(path):
                return iter_source_file(Path(path), digest=feed)
            case UrlSource() as source:
                return iter_source_file(download(spec.name, source, downloads), name=source.url)
        raise AssertionError(f"unknown origin {spec.origin!r}")

    return iter_validated(values(digest), spec.name, spec.fields, spec.number_records, reread=values)


def source_batches(spec: SourceSpec, downloads: Path, workers: Workers,
                   digest: Digest | None = None) -> Iterator[EncodedBatch]:
    """source_records(), encoded a batch at a time (src/sources/encode.py): a JSON Lines file on ``workers``."""
    match spec.origin:
        case PathSource(path):
            file, name = Path(path), path
        case UrlSource() as source:
            file, name, digest = download(spec.name, source, downloads), source.url, None
        case _:
            yield from encoded_batches(source_records(spec, downloads, digest))
            return

    def reread() -> Iterator[tuple[str, object]]:
        return iter_source_file(file, name)

    with opened_source(file, name) as (stream, json_lines):
        if not json_lines:  # read here, from the stream already open (a download is verified once)
            yield from encoded_batches(iter_validated(read_values(stream, name, False, digest), spec.name, spec.fields,
                                                      spec.number_records, reread=reread))
            return
        with SourceCheck(spec.name, spec.fields, spec.number_records, reread) as check:
            for batch in json_lines_batches(file, stream, name, spec.fields, spec.number_records, workers, digest):
                check.add(len(batch), batch.index_digests)
                if batch.error is not None:
                    check.repeats()
                    raise DatasetError(batch.error)
                yield batch
            check.finish()
