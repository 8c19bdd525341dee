"""Sources: pinned url downloads against a real HTTP server on 127.0.0.1, and declared path deps."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.core.config import SourceSpec, UrlSource
from src.core.errors import DatasetError
from src.sources.fetch import download, source_records
from src.sources.sample import sample_records
from tests.project import REAL_DATA_MD5, REAL_DATA_RECORDS, REAL_DATA_SHA256


class FileServer:
    """A loopback HTTP server for one directory that counts the requests it answers."""

    def __init__(self, directory: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                server.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(directory))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


SMALL = "small.json"


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a small generated source (a JSON array of 20 sample records) to serve."""
    directory = tmp_path_factory.mktemp("served")
    (directory / SMALL).write_text(json.dumps(list(sample_records(20, 3)), ensure_ascii=False), encoding="utf-8")
    return directory


@pytest.fixture
def server(served: Path) -> Iterator[FileServer]:
    running = FileServer(served)
    yield running
    running.stop()


@pytest.fixture
def real_server(real_data: Path) -> Iterator[FileServer]:
    running = FileServer(real_data.parent)
    yield running
    running.stop()


def url_spec(url: str, algorithm: str = "sha256", digest: str = "0" * 64) -> SourceSpec:
    return SourceSpec("dolly_ja", UrlSource(url, algorithm, digest))


def url_origin(spec: SourceSpec) -> UrlSource:
    assert isinstance(spec.origin, UrlSource)
    return spec.origin


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("algorithm, digest", [("sha256", REAL_DATA_SHA256), ("md5", REAL_DATA_MD5)])
def test_the_real_dataset_is_downloaded_once_and_verified(real_server: FileServer, real_data: Path, tmp_path: Path,
                                                          algorithm: str, digest: str) -> None:
    spec = url_spec(real_server.url(real_data.name), algorithm, digest)
    records = list(source_records(spec, tmp_path))
    assert len(records) == REAL_DATA_RECORDS
    assert records[0]["index"] == "0" and records[-1]["index"] == "15014"
    assert len(list(source_records(spec, tmp_path))) == REAL_DATA_RECORDS
    assert real_server.requests == [f"/{real_data.name}"]  # the second read used the verified download
    assert [p.name for p in tmp_path.iterdir()] == [f"{algorithm}-{digest}"]
    assert (tmp_path / f"{algorithm}-{digest}").read_bytes() == real_data.read_bytes()


def test_a_small_pinned_download_is_fetched_once(server: FileServer, served: Path, tmp_path: Path) -> None:
    spec = url_spec(server.url(SMALL), digest=sha256(served / SMALL))
    assert [r["index"] for r in source_records(spec, tmp_path)] == [str(n) for n in range(20)]
    assert [r["index"] for r in source_records(spec, tmp_path)] == [str(n) for n in range(20)]
    assert server.requests == [f"/{SMALL}"]


def test_checksum_mismatch_is_refused_and_nothing_is_kept(server: FileServer, served: Path, tmp_path: Path) -> None:
    wrong = "0" * 64
    spec = url_spec(server.url(SMALL), digest=wrong)
    with pytest.raises(DatasetError) as error:
        download("dolly_ja", url_origin(spec), tmp_path)
    assert str(error.value) == (
        f"raw.sources.dolly_ja: {server.url(SMALL)} has sha256 {sha256(served / SMALL)} but params pin {wrong}; "
        "if the file changed on purpose, update raw.sources.dolly_ja.sha256")
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_is_gone_gives_a_clear_error(server: FileServer, tmp_path: Path) -> None:
    spec = url_spec(server.url(SMALL))
    server.stop()
    with pytest.raises(DatasetError) as error:
        download("dolly_ja", url_origin(spec), tmp_path)
    message = str(error.value)
    assert message.startswith(f"raw.sources.dolly_ja: cannot download {server.url(SMALL)} (")
    assert "Connection refused" in message
    assert message.endswith("); check the network or the url, or use a path: source")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_on_the_server_gives_a_clear_error(server: FileServer, tmp_path: Path) -> None:
    spec = url_spec(server.url("no-such-file.json"))
    with pytest.raises(DatasetError) as error:
        download("dolly_ja", url_origin(spec), tmp_path)
    assert str(error.value) == (f"raw.sources.dolly_ja: cannot download {server.url('no-such-file.json')} "
                                "(HTTP 404 File not found); check the url")
    assert list(tmp_path.iterdir()) == []


def test_a_corrupted_earlier_download_is_fetched_again(server: FileServer, served: Path, tmp_path: Path) -> None:
    digest = sha256(served / SMALL)
    spec = url_spec(server.url(SMALL), digest=digest)
    (tmp_path / f"sha256-{digest}").write_bytes(b"[]")
    path = download("dolly_ja", url_origin(spec), tmp_path)
    assert path.read_bytes() == (served / SMALL).read_bytes()
    assert len(server.requests) == 1
