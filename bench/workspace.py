"""The benchmark's work directory: the N-record source files, the project copies and their environment.

Nothing here knows the pipeline's stages: a project copy is the files git tracks (or those of one
commit), committed in a fresh git repository and driven only through `python3 -m src.reshard` and
the `dvc` CLI.
"""
from __future__ import annotations

import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
REAL_DATASET = REPO_ROOT.parent / "shared" / "data" / "databricks-dolly-15k-ja.json"
PROBE = BENCH_DIR / "probe" / "sitecustomize.py"
TAIL_LINES = 25


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


def run_cli(main: Callable[[list[str]], None]) -> None:
    """Run a bench entry point: a BenchError is one `error:` line and exit status 1."""
    try:
        main(sys.argv[1:])
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_checked(command: Sequence[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run an untimed setup command; its stdout, or BenchError with the tail of its stderr."""
    try:
        done = subprocess.run(list(command), check=False, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(command)}` (in {cwd}) timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` (in {cwd}) exited with {done.returncode}:\n{tail(done.stderr)}")
    return done.stdout


def check_workdir(work: Path) -> Path:
    """The work directory, absolute; refused inside the repository (generated data never goes there)."""
    work = work.resolve()
    if work == REPO_ROOT or REPO_ROOT in work.parents:
        raise BenchError(f"--workdir {work} is inside the repository; choose a directory outside it (e.g. under /tmp)")
    work.mkdir(parents=True, exist_ok=True)
    return work


def base_env(work: Path) -> dict[str, str]:
    """The environment of every measured command: private HOME, no analytics, this interpreter first on PATH.

    PYTHONPATH holds a copy of the probe (so no bytecode is written inside the repository).
    """
    home = work / "home"
    probe_dir = work / "probe"
    home.mkdir(exist_ok=True)
    probe_dir.mkdir(exist_ok=True)
    shutil.copyfile(PROBE, probe_dir / PROBE.name)
    env = dict(os.environ)
    for name in ("BENCH_PROBE_DIR", "BENCH_PROFILE", "PYTHONDONTWRITEBYTECODE"):  # stages run as users run them
        env.pop(name, None)
    env.update({
        "DVC_NO_ANALYTICS": "1",
        "HOME": str(home),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "PYTHONPATH": str(probe_dir),
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
    })
    return env


@functools.cache
def real_records() -> list[dict[str, str]]:
    if not REAL_DATASET.is_file():
        raise BenchError(f"{REAL_DATASET}: not found. The benchmark builds its source by repeating the real "
                         "databricks-dolly-15k-ja.json; put that file in ../shared/data/ beside the repository")
    with REAL_DATASET.open(encoding="utf-8") as stream:
        records: list[dict[str, str]] = json.load(stream)
    return records


def require_real_dataset() -> None:
    """Fail early, with a clear message, when the real dataset is absent."""
    real_records()


def source_lines(count: int) -> Iterator[str]:
    """``count`` records: the real ones repeated in order, ``index`` renumbered "0", "1", ... (unique)."""
    records = real_records()
    for number in range(count):
        yield json.dumps({**records[number % len(records)], "index": str(number)}, ensure_ascii=False)


def write_jsonl(stream: TextIO, count: int) -> None:
    stream.writelines(line + "\n" for line in source_lines(count))


def write_array(stream: TextIO, count: int) -> None:
    stream.write("[\n")
    stream.writelines((",\n" if number else "") + line for number, line in enumerate(source_lines(count)))
    stream.write("\n]\n")


def cached_file(path: Path, build: Callable[[TextIO], None]) -> Path:
    """``path``, built once: a marker beside it records the size of the complete file."""
    marker = path.with_name(path.name + ".size")
    if path.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == str(path.stat().st_size):
        return path
    print(f"building {path} ...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as stream:
        build(stream)
    partial.replace(path)
    marker.write_text(str(path.stat().st_size), encoding="utf-8")
    return path


def jsonl_source(work: Path, count: int) -> Path:
    """The N-record source as JSON Lines (cached by N)."""
    return cached_file(work / "sources" / f"dolly-ja-{count}.jsonl", lambda stream: write_jsonl(stream, count))


def array_source(work: Path, count: int) -> Path:
    """The same first N records as one JSON array (cached by N), for the reference conversion."""
    return cached_file(work / "sources" / f"dolly-ja-{count}.json", lambda stream: write_array(stream, count))


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=60)
    return [name for name in listing.stdout.decode("utf-8").split("\0") if name]


def copy_work_tree(repo: Path) -> None:
    """The files git tracks, as they are in the work tree (a tracked file deleted there is left out)."""
    for name in tracked_files():
        source = REPO_ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)


def extract_revision(repo: Path, rev: str) -> None:
    """The files of commit ``rev`` (git archive), whatever the work tree holds."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO_ROOT, capture_output=True,
                             check=False, timeout=600)
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev}: {tail(archive.stderr.decode('utf-8', 'replace'))}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(repo, filter="data")


def resolve_revision(rev: str) -> str:
    """The full commit id of ``rev``, fixed once so that a commit made meanwhile changes nothing."""
    parsed = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    if parsed.returncode != 0:
        raise BenchError(f"--rev {rev}: not a commit of {REPO_ROOT}")
    return parsed.stdout.strip()


def describe_code(commit: str | None) -> str:
    """Which project code a run measured: the work tree, or a commit."""
    return "the work tree (the files git tracks, as edited)" if commit is None else f"commit {commit[:12]}"


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    return run_checked(["git", *args], repo, env, timeout=600)


def commit_all(repo: Path, env: dict[str, str], message: str) -> None:
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "--allow-empty", "-m", message)


def copy_project(repo: Path, env: dict[str, str], rev: str | None) -> None:
    """A fresh git repository holding the project's files: the work tree's, or commit ``rev``'s."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    if rev is None:
        copy_work_tree(repo)
    else:
        extract_revision(repo, rev)
    git(repo, env, "init", "-q")
    commit_all(repo, env, "project copy")


def use_source(repo: Path, source: Path) -> None:
    """params.yaml: raw.sources is exactly {bench: {path: SOURCE}}; dvc.yaml: SOURCE is a dep of raw."""
    params_path, dvc_yaml_path = repo / "params.yaml", repo / "dvc.yaml"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["raw"]["sources"] = {"bench": {"path": str(source)}}
    params_path.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    pipeline = yaml.safe_load(dvc_yaml_path.read_text(encoding="utf-8"))
    pipeline["stages"]["raw"].setdefault("deps", []).append(str(source))
    dvc_yaml_path.write_text(yaml.safe_dump(pipeline, sort_keys=False, allow_unicode=True), encoding="utf-8")


def reshard(repo: Path, env: dict[str, str], count: int, records: int | None, timeout: float,
            even: bool = False) -> None:
    extra = ([] if records is None else ["--records", str(records)]) + (["--even"] if even else [])
    run_checked([sys.executable, "-m", "src.reshard", str(count), *extra], repo, env, timeout)


def scale_project(repo: Path, env: dict[str, str], rev: str | None, source: Path, records: int, shards: int,
                  timeout: float) -> None:
    """A project copy whose only source is ``source`` (``records`` records), resharded to ``shards``; committed."""
    copy_project(repo, env, rev)
    use_source(repo, source)
    reshard(repo, env, shards, records, timeout)
    commit_all(repo, env, f"bench: {records} records, {shards} shards")


def dvc(*args: str) -> list[str]:
    """A dvc command line run by this interpreter (the DVC installed beside it)."""
    return [sys.executable, "-m", "dvc", *args]


def make_cold(repo: Path, site_cache: Path, env: dict[str, str]) -> None:
    """Back to a fresh clone: no outputs, no dvc.lock changes, no DVC cache or run cache, no DVC state.

    Everything git does not track goes (outputs, .dvc/cache with its runs/, .dvc/tmp), tracked files
    get their committed bytes back, and DVC's site cache (its hash state and index) is emptied.
    """
    git(repo, env, "clean", "-q", "-f", "-d", "-x")
    git(repo, env, "checkout", "-q", "HEAD", "--", ".")
    if site_cache.exists():
        shutil.rmtree(site_cache)


def outputs(directory: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` under ``directory``, in natural order (2_of_4 before 10_of_12)."""
    def key(path: Path) -> list[int | str]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
    return sorted(directory.glob(pattern), key=key)
