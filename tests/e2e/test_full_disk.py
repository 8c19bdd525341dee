"""A full disk is a fault of the machine, reported like bad input: one `error:` line naming the output and the
cause, exit status 1, no traceback, nothing partial left. The disk is real: a 256 KiB tmpfs mounted by the test
(these machines run as root), never a mock."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from src.sources.sample import sample_records
from tests.project import PROJECT_ROOT

pytestmark = pytest.mark.e2e

DISK_SIZE = "256k"
NO_SPACE = "No space left on device"


@contextlib.contextmanager
def mounted_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(path)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the full-disk tests need root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk") as disk:
        yield disk


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml of the project and the default pipeline's raw and merged data, on an ordinary disk."""
    work = tmp_path_factory.mktemp("built")
    (work / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    run_stage(work, "src.raw", "params.yaml", str(PROJECT_ROOT / "dvc.yaml"), "downloads", "raw").check_returncode()
    run_stage(work, "src.merge", "params.yaml", "raw", "merged.jsonl", "records.npy", "sources.json",
              "merge.json").check_returncode()
    return work


def run_stage(work: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)


def assert_refused_cleanly(result: subprocess.CompletedProcess, output: Path, disk: Path) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr == (f"error: {output}: cannot write ({NO_SPACE}); free some disk space or check the "
                             "device, then run the stage again\n")
    assert list(disk.iterdir()) == []  # no temporary, no partial output


def test_raw_on_a_full_disk(built: Path, full_disk: Path) -> None:
    out = full_disk / "raw"
    result = run_stage(built, "src.raw", "params.yaml", str(PROJECT_ROOT / "dvc.yaml"), "downloads", str(out))
    assert_refused_cleanly(result, out, full_disk)


def test_merge_on_a_full_disk(built: Path, full_disk: Path) -> None:
    out = full_disk / "merged.jsonl"
    result = run_stage(built, "src.merge", "params.yaml", "raw", str(out), str(full_disk / "records.npy"),
                       str(full_disk / "sources.json"), str(full_disk / "merge.json"))
    assert_refused_cleanly(result, out, full_disk)


def test_split_on_a_full_disk(built: Path, full_disk: Path) -> None:
    result = run_stage(built, "src.split", "params.yaml", str(PROJECT_ROOT / "dvc.yaml"), "merged.jsonl", "records.npy",
                       "sources.json",
                       str(full_disk / "shards" / "x-{shard}.jsonl"), str(full_disk / "shards" / "README.md"),
                       *(str(full_disk / name) for name in ("split.json", "s.json", "c.json", "l.json", "k.json",
                                                            "t.json")))
    assert_refused_cleanly(result, full_disk / "shards", full_disk)


def test_the_plots_page_on_a_full_disk(built: Path, full_disk: Path) -> None:
    out = full_disk / "page.html"
    assert_refused_cleanly(run_stage(built, "src.plots_page", str(out)), out, full_disk)


def test_a_download_onto_a_full_disk_is_not_called_a_network_problem(tmp_path: Path, full_disk: Path) -> None:
    import hashlib
    import http.server
    import threading
    from functools import partial

    served = tmp_path / "served"
    served.mkdir()
    data = json.dumps(list(sample_records(2000, 5)), ensure_ascii=False).encode("utf-8")
    assert len(data) > 1 << 20  # larger than the disk
    (served / "big.json").write_bytes(data)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
        digest = hashlib.sha256(data).hexdigest()
        params["raw"]["sources"] = {"remote": {"url": f"http://127.0.0.1:{httpd.server_address[1]}/big.json",
                                               "sha256": digest}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        result = run_stage(tmp_path, "src.raw", "params.yaml", str(PROJECT_ROOT / "dvc.yaml"), str(full_disk),
                           str(tmp_path / "raw"))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    assert_refused_cleanly(result, full_disk / f"sha256-{digest}", full_disk)
    assert not (tmp_path / "raw").exists()
