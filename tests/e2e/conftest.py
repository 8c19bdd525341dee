"""End-to-end fixtures: a temporary git repository holding the project (tests/e2e/repo.py), real S3 servers
(tests/e2e/s3.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.repo import Repo, base_environment, make_repo
from tests.e2e.s3 import S3Server, running_s3_server


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """The project, committed in a fresh git repository (work/repo in tmp_path), with an empty DVC cache.

    Its default remote (../../dolly-ja-dvc-remote from .dvc/) is work/dolly-ja-dvc-remote beside it.
    """
    home = tmp_path / "home"
    home.mkdir()
    return make_repo(tmp_path / "work" / "repo", base_environment(home))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test's report ends with the log tail of every S3 server it was using."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in S3Server.in_use:
            report.sections.append((f"S3 server log {server.log_path} (last lines)", server.log_tail()))


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One S3 server shared by a test module (tests keep to their own key prefixes). Never stop it in a test."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def own_s3_server(tmp_path: Path):
    """An S3 server for one test alone: for tests that stop, kill or restart it."""
    with running_s3_server(tmp_path / "s3") as server:
        yield server
