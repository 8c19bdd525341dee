"""Bad input and hand edits through the real `dvc repro`, on the small project (tests/e2e/cases.py) reproduced and
committed: a refused input keeps dvc.lock and the cache, `dvc checkout` restores; a hand-edited output is reported,
restored and never reaches the cache; BOM and CRLF sources are repaired to byte-identical outputs."""
from __future__ import annotations

import codecs
import hashlib
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from tests.e2e.cases import PARAMS_CASE, SOURCE_CASE, fresh_home, make_small, outputs, source_path, stage_outs, tree
from tests.e2e.repo import Repo, cache_objects, lock_outs, make_repo, object_key, ran_stages
from tests.project import readme_command
from tests.sources.test_readers import REPAIRS

pytestmark = pytest.mark.e2e

# What DVC itself keeps and changes as it runs: its git history, locks and temporary files, and the run cache
# (where a stage that succeeded before the failure is recorded).
DVC_BOOKKEEPING = ("repo/.git", "repo/.dvc/tmp", "repo/.dvc/cache/runs")


@pytest.fixture(scope="module")
def small_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project reproduced and committed, in work/repo (work/ is copied whole for each test, so that
    anything written beside the repository shows)."""
    root = tmp_path_factory.mktemp("small")
    repo = make_repo(root / "work" / "repo", fresh_home(root))
    make_small(repo.path)
    repo.commit("the small project: two path sources, 40 records, 4 shards")
    repo.dvc("repro")
    repo.commit("reproduced")
    return root / "work"


@pytest.fixture
def small(small_template: Path, tmp_path: Path) -> Repo:
    """A copy of the small reproduced repository, for one test."""
    shutil.copytree(small_template, tmp_path / "work", symlinks=True)
    return Repo(tmp_path / "work" / "repo", fresh_home(tmp_path))


def break_source(case_id: str):
    case = SOURCE_CASE[case_id]

    def apply(repo: Repo) -> None:
        path = repo.path / source_path(case.kind)
        path.unlink() if case.data is None else path.write_bytes(case.data)
    return case_id, apply, "raw", case.expected()


def break_params(case_id: str):
    case = PARAMS_CASE[case_id]

    def apply(repo: Repo) -> None:
        path = repo.path / "params.yaml"
        path.write_text(case.edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return case_id, apply, case.stage, case.message


DVC_CASES = [
    *map(break_source, ["array truncated inside a record", "array: lone surrogate escape", "jsonl with a blank line",
                        "jsonl: category 'Open_QA'"]),
    *map(break_params, ["typo pth", "overlap", "stop past the end",
                        # A shard key never reaches a command line (dvc.yaml interpolates nothing from params):
                        # the params stage refuses it before any other stage runs, and nothing is written.
                        "shard key '$(touch x)'", "shard key '../x'"]),
]


@pytest.mark.parametrize(("edit", "stage", "expected"), [c[1:] for c in DVC_CASES], ids=[c[0] for c in DVC_CASES])
def test_dvc_repro_refuses_bad_input_keeps_dvc_lock_and_checkout_restores(small: Repo, edit, stage: str,
                                                                          expected: str) -> None:
    lock, cache, outputs_before = small.read_bytes("dvc.lock"), cache_objects(small), outputs(small.path)
    params_before = small.read_bytes("params.yaml")
    edit(small)
    before = tree(small.path.parent, skip=DVC_BOOKKEEPING)
    failed = small.dvc("repro", check=False)
    assert failed.returncode != 0
    # The stage's one line, then DVC's own; nothing else (no traceback).
    stage_line, dvc_line = failed.stderr.splitlines()
    assert stage_line == f"error: {expected}"
    assert dvc_line.startswith(f"ERROR: failed to reproduce '{stage}': ") and dvc_line.endswith(", exited with 1")
    # dvc.lock records only the stages that succeeded before the failure (the params check, when the params are
    # valid and only the data shows a range is wrong); the failed stage's entry and all others are unchanged.
    succeeded = [name for name in ran_stages(failed.stdout) if name != stage]
    assert succeeded == (["params"] if stage != "params" and small.read_bytes("params.yaml") != params_before else [])
    entries_before, entries_after = (yaml.safe_load(text)["stages"] for text in (lock, small.read_bytes("dvc.lock")))
    assert {name: entry for name, entry in entries_after.items() if name not in succeeded} == \
           {name: entry for name, entry in entries_before.items() if name not in succeeded}
    assert cache_objects(small) == cache
    # DVC deletes a stage's outputs before running it: the failed stage's are absent (never partial). Nothing else in
    # the repository or beside it changed, and nothing was added (dvc.lock is unchanged when no stage succeeded).
    after = tree(small.path.parent, skip=DVC_BOOKKEEPING)
    failed_outs = tuple("repo/" + out for out in stage_outs(small.path / "dvc.yaml", stage))
    absent = [name for name in before if name not in after]
    assert all(name.startswith(failed_outs) for name in absent), absent
    changed = [name for name in after if before.get(name) != after[name]]
    assert changed == ([] if not succeeded else ["repo/dvc.lock"])
    assert re.search(rf"^{stage}:", small.dvc("status").stdout, re.MULTILINE)

    # `dvc checkout` restores the cached outputs; metrics and plot tables are `cache: false` (git tracks them), so
    # a failed stage's come back from git.
    small.dvc("checkout")
    uncached = [path for path, cached in stage_outs(small.path / "dvc.yaml", stage).items() if not cached]
    if uncached:
        small.git("checkout", "HEAD", "--", *uncached)
    assert outputs(small.path) == outputs_before


def test_dvc_repro_repairs_bom_and_crlf_to_byte_identical_outputs(small: Repo) -> None:
    before, outs = outputs(small.path), lock_outs(small)
    main, extra = small.path / source_path("array"), small.path / source_path("jsonl")
    main.write_bytes(REPAIRS["bom and crlf"](main.read_bytes()))
    extra.write_bytes(codecs.BOM_UTF8 + REPAIRS["crlf blank lines at the end"](extra.read_bytes()))
    result = small.dvc("repro")
    # The records came out byte-identical; the provenance (raw and merged sources.json, the card) records the
    # repaired files' own checksums, so merge and split ran to carry them.
    assert ran_stages(result.stdout) == ["raw", "merge", "split"]
    provenance = ("data/raw/sources.json", "data/merged/sources.json", "data/shards/README.md")
    assert {k: v for k, v in outputs(small.path).items() if k not in provenance} == \
        {k: v for k, v in before.items() if k not in provenance}
    assert all(outputs(small.path)[name] != before[name] for name in provenance)
    assert lock_outs(small)["data/merged/databricks-dolly-16k-ja.jsonl"] == outs["data/merged/databricks-dolly-16k-ja.jsonl"]
    assert small.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_a_hand_edited_output_is_reported_restored_and_never_reaches_the_cache(small: Repo) -> None:
    assert small.dvc("config", "cache.type").stdout.strip() == "reflink,copy"
    shard = small.shard("2_of_4")
    original, lock = shard.read_bytes(), small.read_bytes("dvc.lock")
    md5 = hashlib.md5(original).hexdigest()
    cached = small.path / ".dvc" / "cache" / object_key(md5)
    assert cached.read_bytes() == original
    assert not shard.is_symlink() and os.stat(shard).st_ino != os.stat(cached).st_ino  # a copy, not a link

    with shard.open("r+b") as stream:  # edit in place: with a hard link this would write into the cache
        stream.write(b'{"instruction": "tampered"')
    status = small.dvc("status").stdout
    assert re.search(r"^split:\s+changed outs:\s+modified:\s+data/shards$", status, re.MULTILINE), status
    assert hashlib.md5(cached.read_bytes()).hexdigest() == md5
    refused = small.dvc("checkout", check=False)  # DVC does not overwrite unsaved edits without --force
    assert refused.returncode != 0 and "Use `--force` to force" in refused.stderr
    assert shard.read_bytes() != original
    small.dvc("checkout", "--force")
    assert shard.read_bytes() == original

    with shard.open("ab") as stream:
        stream.write(b"one more line\n")
    small.dvc("repro")  # the stage's output changed: rerun (or restored from the run cache)
    assert shard.read_bytes() == original
    assert hashlib.md5(cached.read_bytes()).hexdigest() == md5
    assert small.read_bytes("dvc.lock") == lock
    assert small.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_the_hardlink_cache_docs_offer_links_outputs_and_unprotect_makes_a_copy_again(small: Repo) -> None:
    """docs/errors.md: with `cache.type hardlink` (local config) the outputs are the cache objects, read-only, with
    the same dvc.lock; `dvc unprotect` turns an output back into a writable copy of its own."""
    lock = small.read_bytes("dvc.lock")
    small.sh(readme_command("dvc config --local cache.type hardlink"))
    assert small.git("status", "--porcelain").stdout == ""  # the choice stays in this clone
    small.dvc("repro", "-f")
    assert small.read_bytes("dvc.lock") == lock
    shard = small.shard("2_of_4")
    cached = small.path / ".dvc" / "cache" / object_key(hashlib.md5(shard.read_bytes()).hexdigest())
    assert os.stat(shard).st_ino == os.stat(cached).st_ino and os.stat(shard).st_nlink == 2
    assert stat.S_IMODE(os.stat(shard).st_mode) & 0o222 == 0

    small.sh(readme_command("dvc unprotect data/shards"))
    assert os.stat(shard).st_ino != os.stat(cached).st_ino
    assert stat.S_IMODE(os.stat(shard).st_mode) & 0o200
    assert shard.read_bytes() == cached.read_bytes()
    assert small.dvc("status").stdout.strip() == "Data and pipelines are up to date."
