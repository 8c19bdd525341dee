"""A temporary git repository holding the project, driven by the real dvc CLI, and helpers that read what DVC
recorded (dvc.lock, the cache). An ordinary module: tests import it; tests/e2e/conftest.py makes the fixture."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.project import PROJECT_ROOT

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

    def clone(self, destination: Path) -> Repo:
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


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` run executed, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def lock_outs(repo: Repo) -> dict[str, str]:
    """md5 of every stage output, from dvc.lock (a directory's ends in .dir)."""
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def edit_params(repo: Repo, edit) -> None:
    path = repo.path / "params.yaml"
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def object_key(md5: str) -> str:
    """Where DVC 3 keeps an object, relative to a cache directory or a remote's URL."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def cache_objects(repo: Repo) -> dict[str, int]:
    """Every data object in a repository's DVC cache as {object_key: size} (run-cache entries, never pushed
    by a plain `dvc push`, are left out)."""
    files = repo.path / ".dvc" / "cache" / "files"
    if not files.exists():
        return {}
    return {path.relative_to(files.parent).as_posix(): path.stat().st_size for path in files.rglob("*")
            if path.is_file()}


def dir_listing(repo: Repo, out: str) -> dict[str, str]:
    """{relative path: md5} of the files of a directory output, from its .dir listing in the cache."""
    listing = json.loads((repo.path / ".dvc" / "cache" / object_key(lock_outs(repo)[out])).read_text())
    return {entry["relpath"]: entry["md5"] for entry in listing}


def cached_outs(repo: Repo) -> list[str]:
    """The outputs DVC caches and pushes (dvc.yaml outs and metrics not marked cache: false), in dvc.yaml's order."""
    stages = yaml.safe_load((repo.path / "dvc.yaml").read_text())["stages"]
    entries = [out for stage in stages.values() for key in ("outs", "metrics", "plots") for out in stage.get(key, [])]
    return [out if isinstance(out, str) else next(iter(out)) for out in entries
            if isinstance(out, str) or (out[next(iter(out))] or {}).get("cache", True)]


def out_object_keys(repo: Repo, paths: list[str] | None = None) -> set[str]:
    """The objects the given outputs (default: every cached output) consist of: a file's object, or a directory's
    .dir listing (read from the cache) and every file in it."""
    outs = lock_outs(repo)
    keys = set()
    for path in cached_outs(repo) if paths is None else paths:
        md5 = outs[path]
        keys.add(object_key(md5))
        if md5.endswith(".dir"):
            listing = json.loads((repo.path / ".dvc" / "cache" / object_key(md5)).read_text())
            keys.update(object_key(entry["md5"]) for entry in listing)
    return keys


def tracked_key_material(repo: Repo, values: list[str]) -> list[str]:
    """Files git tracks (in the index or in any commit reachable from a branch or tag) that hold one of the
    given secret values or an AWS-shaped access key id. Empty when no key material was ever committed."""
    revisions = repo.git("rev-list", "--all").stdout.split()
    assert revisions, "no commits to search"
    hits: set[str] = set()
    for pattern_args in ([arg for value in values for arg in ("-e", value)] + ["-F"],
                         ["-E", "-e", "(AKIA|ASIA)[0-9A-Z]{16}"]):
        for where in (["--cached"], revisions):
            found = repo.git("grep", "-I", "-l", *pattern_args, *where, check=False)
            assert found.returncode in (0, 1), found.stderr  # 1: no match
            hits.update(line.split(":", 1)[-1] if where == revisions else line
                        for line in found.stdout.splitlines())
    return sorted(hits)
