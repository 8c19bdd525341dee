"""End-to-end fixtures: a temporary git repository holding the project, driven by the real dvc CLI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

COMMAND_TIMEOUT_SECONDS = 600
SHARD_TEMPLATE = "data/shards/databricks-dolly-16k-line_ja-{}.jsonl"


def project_files() -> list[str]:
    """The project's files as git sees them (tracked or new, never ignored): what a clone would hold."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    return [name for name in listing.decode().split("\0") if name and (PROJECT_ROOT / name).is_file()]


def base_environment(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "GIT_"))}
    env.update({
        "HOME": str(home),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        # The stages run `python3`: make it the interpreter running the tests.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    return env


@dataclass
class Repo:
    """A git repository with the project in it; commands run there with a bounded time."""

    path: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = COMMAND_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.path, env={**self.env, **(env or {})}, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def dvc(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, **kwargs)

    def git(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("git", *args, **kwargs)

    def sh(self, command: str, **kwargs) -> subprocess.CompletedProcess:
        """A shell command line exactly as a user types it (README commands)."""
        return self.run("bash", "-c", command, **kwargs)

    def python(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(sys.executable, *args, **kwargs)

    def read_bytes(self, relative: str) -> bytes:
        return (self.path / relative).read_bytes()

    def shard(self, name: str) -> Path:
        return self.path / SHARD_TEMPLATE.format(name)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def clone(self, destination: Path) -> "Repo":
        """A git clone beside this repository (so the default local DVC remote is shared)."""
        self.run("git", "clone", "-q", str(self.path), str(destination))
        return Repo(destination, self.env)


def make_repo(path: Path, env: dict[str, str]) -> Repo:
    path.mkdir(parents=True)
    for name in project_files():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    repo = Repo(path, env)
    repo.git("init", "-q", "-b", "main")
    repo.commit("project under test")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """The project, committed in a fresh git repository under tmp_path/work/repo, with an empty DVC cache.

    Its default remote (../../dolly-ja-dvc-remote from .dvc/) is tmp_path/work/dolly-ja-dvc-remote.
    """
    home = tmp_path / "home"
    home.mkdir()
    return make_repo(tmp_path / "work" / "repo", base_environment(home))
