"""Interrupted and concurrent runs, and determinism, on the default pipeline (16,000 sample records): a stage script
SIGKILLed while writing and just before each rename, `dvc repro` SIGKILLed in every stage, two `dvc repro` at once,
and byte-identical outputs and dvc.lock whatever the locale, hash seed, time zone and directory."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.cases import (
    dump_yaml,
    fresh_home,
    is_temporary,
    load_yaml,
    outputs,
    script_environment,
    stage_command,
    stage_outs,
    temporaries,
    tree,
)
from tests.e2e.repo import Repo, make_repo
from tests.project import PROJECT_ROOT

pytestmark = pytest.mark.e2e

SCRIPT_TIMEOUT_SECONDS = 300
DVC_TIMEOUT_SECONDS = 600
POLL_SECONDS = 0.002
POLL_LIMIT_SECONDS = 240.0
LOCK_REFUSALS = ("Unable to acquire lock", "is busy, it is being blocked by")


def kill_group_when(process: subprocess.Popen, ready: Callable[[], bool]) -> bool:
    """Poll (bounded) until ``ready()`` or the process ends; then SIGKILL the process's group.

    Returns whether ``ready()`` was seen while the process ran.
    """
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    seen = False
    for _ in range(int(POLL_LIMIT_SECONDS / POLL_SECONDS)):
        if ready():
            seen = True
            break
        if process.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    if process.poll() is None:  # not yet reaped, so its id cannot have been reused
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    return seen


def writing(folder: Path, prefix: str) -> Callable[[], bool]:
    """Whether an atomic-write temporary '{prefix}XXXXXXXX.tmp' exists in ``folder``."""
    return lambda: folder.is_dir() and any(name.startswith(prefix) and name.endswith(".tmp")
                                           for name in os.listdir(folder))


# ---------------------------------------------------------------------------------------------------------------------
# A stage script killed at each point of its writing: every output holds its old bytes or its new ones (a directory
# may also be absent, between its two renames); the next run of the stage gives exactly the clean result.
# ---------------------------------------------------------------------------------------------------------------------

STAGES = ["raw", "merge", "split"]
# Other sample seeds, and 2 shards instead of 4: the old outputs differ from the new ones in every byte and name.
OLD_SEEDS = {"dolly_ja": 1, "additions": 2}
OLD_SHARDS = {"shard1": 8000, "shard2": 16000}
# Run the stage command in argv[2:], SIGKILLed just before its rename number argv[1]: os.rename and os.replace (the
# audit event "os.rename"), or renameat2 looked up through ctypes (an atomic exchange of two directories).
KILL_BEFORE_RENAME = """
import os, runpy, signal, sys
limit, calls = int(sys.argv[1]), []
def audit(event, args):
    if event == "os.rename" or (event == "ctypes.dlsym" and "rename" in str(args[-1])):
        calls.append(event)
        if len(calls) == limit:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(audit)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
MAX_RENAMES = 20


def state_of(root: Path, output: str) -> object:
    """An output's content: md5 of a file, {name: md5} of a directory, None when absent."""
    path = root / output
    if path.is_dir():
        return tree(path)
    return hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else None


def run_stage(root: Path, stage: str) -> None:
    result = subprocess.run(stage_command(root / "dvc.yaml", stage), cwd=root, env=script_environment(),
                            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


@pytest.fixture(scope="module")
def old_and_new(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two directories with the project's dvc.yaml: 'new' ran every stage with the project's params, 'old' with
    other seeds and shard count."""
    root = tmp_path_factory.mktemp("kills")
    for name in ("old", "new"):
        (root / name).mkdir()
        for file in ("dvc.yaml", "params.yaml"):
            shutil.copy2(PROJECT_ROOT / file, root / name / file)
    params = load_yaml(root / "old" / "params.yaml")
    for source, seed in OLD_SEEDS.items():
        params["raw"]["sources"][source]["sample"]["seed"] = seed
    params["split"].update(count=len(OLD_SHARDS), shards=OLD_SHARDS)
    dump_yaml(root / "old" / "params.yaml", params)
    for name in ("old", "new"):
        for stage in STAGES:
            run_stage(root / name, stage)
    return root / "old", root / "new"


def old_outputs_new_inputs(old_root: Path, new_root: Path, stage: str, work: Path) -> None:
    """In ``work``: the old run's outputs of ``stage`` (copies), with the new run's params and inputs (the upstream
    stages' outputs, hard links: no stage writes into its inputs)."""
    work.mkdir()
    for file in ("dvc.yaml", "params.yaml"):
        shutil.copy2(new_root / file, work / file)
    pipeline = new_root / "dvc.yaml"
    inputs = [output for upstream in STAGES[:STAGES.index(stage)] for output in stage_outs(pipeline, upstream)]
    sources = [(output, old_root, shutil.copy2) for output in stage_outs(pipeline, stage)]
    for output, root, copy in sources + [(output, new_root, os.link) for output in inputs]:
        (work / output).parent.mkdir(parents=True, exist_ok=True)
        if (root / output).is_dir():
            shutil.copytree(root / output, work / output, copy_function=copy)
        else:
            copy(root / output, work / output)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_killed_while_writing_or_before_each_rename_leaves_old_or_new_and_the_rerun_is_clean(
        tmp_path: Path, old_and_new: tuple[Path, Path], stage: str) -> None:
    old_root, new_root = old_and_new
    names = list(stage_outs(new_root / "dvc.yaml", stage))
    old = {output: state_of(old_root, output) for output in names}
    new = {output: state_of(new_root, output) for output in names}
    assert all(old[output] != new[output] and None not in (old[output], new[output]) for output in names)
    directories = [output for output in names if (new_root / output).is_dir()]
    # The stage's main output is written first, to a '.NAME.XXXXXXXX.tmp' beside it (src/output/files.py).
    main = Path(names[0])
    command = stage_command(new_root / "dvc.yaml", stage)

    def killed_run(point: str, work: Path) -> subprocess.Popen | subprocess.CompletedProcess:
        if point == "while writing":
            process = subprocess.Popen(command, cwd=work, env=script_environment(), start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert kill_group_when(process, writing(work / main.parent, f".{main.name}.")), \
                f"{stage} was not caught writing {main}"
            return process
        return subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, point.split()[-1], *command[2:]], cwd=work,
                              env=script_environment(), capture_output=True, text=True,
                              timeout=SCRIPT_TIMEOUT_SECONDS)

    history: dict[str, list[str]] = {output: [] for output in names}
    for point in ["while writing", *[f"before rename {k}" for k in range(1, MAX_RENAMES + 1)]]:
        work = tmp_path / point.replace(" ", "-")
        old_outputs_new_inputs(old_root, new_root, stage, work)
        result = killed_run(point, work)
        if result.returncode == 0 and point != "while writing":  # it made every rename before this one
            break
        assert result.returncode == -signal.SIGKILL, getattr(result, "stderr", "")
        for output in names:
            state = state_of(work, output)
            label = "old" if state == old[output] else "new" if state == new[output] else \
                "absent" if state is None and output in directories else None
            assert label, f"{output} holds partial or foreign bytes after a kill {point}"
            history[output].append(label)
        # The next run sweeps whatever the killed one left and writes exactly the clean result.
        run_stage(work, stage)
        assert temporaries(work) == []
        assert {output: state_of(work, output) for output in names} == new
    else:
        pytest.fail(f"{stage} made more than {MAX_RENAMES} renames")
    renames = int(point.split()[-1]) - 1
    assert renames >= len(names), f"{stage} made {renames} renames for its {len(names)} outputs"
    # Each output goes from old to new once and never back (a directory may be absent for one step between, where
    # the system cannot exchange two directories in one rename).
    for output, labels in history.items():
        assert labels[:2] == ["old", "old"], (output, labels)  # while writing; before the first rename
        assert re.fullmatch(r"(old,)+(absent,)?(new,)*", ",".join(labels) + ","), (output, labels)


# ---------------------------------------------------------------------------------------------------------------------
# `dvc repro` on the default pipeline: determinism, kills, two runs at once
# ---------------------------------------------------------------------------------------------------------------------

ENV_A = {"LC_ALL": "C", "LANG": "C", "PYTHONHASHSEED": "0", "TZ": "UTC"}


def env_b() -> dict[str, str]:
    """Another locale (Japanese where installed), hash seed and time zone."""
    listed = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    japanese = [name for name in listed if name.lower().replace("-", "") in ("ja_jp.utf8",)]
    locale = "ja_JP.UTF-8" if japanese else "C.UTF-8"
    return {"LC_ALL": locale, "LANG": locale, "PYTHONHASHSEED": "3141592653", "TZ": "Asia/Tokyo"}


@dataclass
class Reference:
    """The default pipeline reproduced once (environment A): its dvc.lock and the md5 of every output file.

    (That the committed dvc.lock, metrics and plot tables are what this gives is test_pipeline's first test.)"""

    repo: Repo
    lock: bytes
    outputs: dict[str, str]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    root = tmp_path_factory.mktemp("reference")
    repo = make_repo(root / "work" / "repo", fresh_home(root))
    repo.dvc("repro", env=ENV_A)
    return Reference(repo, repo.read_bytes("dvc.lock"), outputs(repo.path))


def assert_reproduced(repo: Repo, reference: Reference) -> None:
    assert outputs(repo.path) == reference.outputs  # also: no stray temporary, no leftover file
    assert repo.read_bytes("dvc.lock") == reference.lock
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    for cached in (repo.path / ".dvc" / "cache" / "files" / "md5").rglob("*"):
        if cached.is_file():
            assert hashlib.md5(cached.read_bytes()).hexdigest() == cached.parent.name + cached.name.removesuffix(".dir")


def test_outputs_and_dvc_lock_do_not_depend_on_locale_hash_seed_time_zone_or_directory(
        tmp_path: Path, reference: Reference) -> None:
    # Environment B: another absolute path (with spaces and non-ASCII), run from a subdirectory.
    repo = make_repo(tmp_path / "second checkout" / "日本語 ディレクトリ" / "repo", fresh_home(tmp_path))
    result = subprocess.run([sys.executable, "-m", "dvc", "repro", "../dvc.yaml"], cwd=repo.path / "metrics",
                            env={**repo.env, **env_b()}, capture_output=True, text=True, timeout=DVC_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stderr
    assert "Running stage '../dvc.yaml:split'" in result.stdout, result.stdout
    assert_reproduced(repo, reference)
    for name in outputs(repo.path):
        content = (repo.path / name).read_bytes()
        for root in (repo.path, reference.repo.path, tmp_path):
            assert str(root).encode() not in content, f"{name} holds an absolute path"
        if name.endswith(".json"):
            assert not re.search(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d", content), f"{name} holds a timestamp"


def test_dvc_repro_killed_in_every_stage_then_rerun_gives_the_clean_bytes(tmp_path: Path,
                                                                          reference: Reference) -> None:
    repo = make_repo(tmp_path / "work" / "repo", fresh_home(tmp_path))
    data = repo.path / "data"
    points = {"raw": writing(data, ".raw."), "merge": writing(data / "merged", ".databricks-dolly-16k-ja.jsonl."),
              "split": writing(data, ".shards.")}
    caught = []
    for stage, ready in points.items():
        with (tmp_path / "dvc.log").open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo.path, env=repo.env,
                                       stdout=log, stderr=log, start_new_session=True)
            caught.append(kill_group_when(process, ready))
        # Whatever was killed where: every output present is complete, byte for byte the clean run's.
        for name, md5 in outputs(repo.path).items():
            if not is_temporary(name):
                assert md5 == reference.outputs[name], f"{name} is partial after a kill while {stage} ran"
    assert caught == [True, True, True], "dvc repro was not caught writing data/raw, the merged file and data/shards"

    rerun = repo.dvc("repro")
    assert "Running stage" in rerun.stdout
    assert temporaries(repo.path) == []
    assert_reproduced(repo, reference)


def test_two_dvc_repro_at_once_one_waits_or_refuses_and_nothing_is_corrupted(tmp_path: Path,
                                                                            reference: Reference) -> None:
    repo = make_repo(tmp_path / "work" / "repo", fresh_home(tmp_path))
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    processes = []
    for log in logs:
        with log.open("wb") as stream:
            processes.append(subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo.path, env=repo.env,
                                              stdout=subprocess.DEVNULL, stderr=stream))
    codes = [process.wait(timeout=DVC_TIMEOUT_SECONDS) for process in processes]
    for code, log in zip(codes, logs, strict=False):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text  # dvc's own output: it must refuse cleanly, not crash
        assert code == 0 or any(refusal in text for refusal in LOCK_REFUSALS), text
    repo.dvc("repro")
    assert temporaries(repo.path) == []
    assert_reproduced(repo, reference)
