"""The stage scripts, run as subprocesses on bad input (issue 4): one `error:` line, exit 1, nothing left behind.

Each test works in a copy of the small project (tests/e2e/cases.py) that has already been through raw, merge and
split, so there are earlier outputs to protect; the stages run exactly as dvc.yaml writes their commands.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.core.schema import CATEGORIES
from tests.e2e.cases import (
    PARAMS_CASE,
    PARAMS_CASES,
    SOURCE_CASES,
    ParamsCase,
    SourceCase,
    make_small,
    script_environment,
    source_path,
    stage_command,
    tree,
)
from tests.e2e.repo import SHARD_TEMPLATE
from tests.project import PROJECT_ROOT
from tests.sources.test_readers import GOOD, KINDS, REPAIRS, record

pytestmark = pytest.mark.e2e

SCRIPT_TIMEOUT_SECONDS = 300
STAGES = ("raw", "merge", "split")


def run_script(cwd: Path, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=script_environment(), capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT_SECONDS)


@dataclass
class Workspace:
    """A directory holding the small project's dvc.yaml, params.yaml, sources and stage outputs."""

    path: Path

    def stage(self, name: str) -> subprocess.CompletedProcess:
        return run_script(self.path, stage_command(self.path / "dvc.yaml", name))

    def module(self, module: str, *args: str) -> subprocess.CompletedProcess:
        return run_script(self.path, [sys.executable, "-m", f"src.{module}", *args])

    def pipeline(self) -> None:
        for name in STAGES:
            result = self.stage(name)
            assert (result.returncode, result.stderr) == (0, ""), result.stderr

    def edit_params(self, edit: Callable[[str], str]) -> None:
        path = self.path / "params.yaml"
        path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")


def assert_one_error_line(result: subprocess.CompletedProcess, expected: str) -> None:
    """A stage script's refusal: exit 1, nothing on stdout, exactly 'error: ...' on one line of stderr."""
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"error: {expected}\n")


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project after a good run of raw, merge and split."""
    root = tmp_path_factory.mktemp("built") / "project"
    root.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(PROJECT_ROOT / name, root / name)
    make_small(root)
    Workspace(root).pipeline()
    return root


@pytest.fixture
def built(tmp_path: Path, built_template: Path) -> Workspace:
    """A copy of the built small project, for this test alone."""
    shutil.copytree(built_template, tmp_path / "project", symlinks=True)
    return Workspace(tmp_path / "project")


# --- bad sources ---

@pytest.mark.parametrize("case", SOURCE_CASES, ids=[case.id for case in SOURCE_CASES])
def test_raw_refuses_a_bad_source_in_one_line_and_leaves_everything_as_it_was(built: Workspace,
                                                                              case: SourceCase) -> None:
    source = built.path / source_path(case.kind)
    if case.data is None:
        source.unlink()
    else:
        source.write_bytes(case.data)
    before = tree(built.path)
    assert_one_error_line(built.stage("raw"), case.expected())
    assert tree(built.path) == before  # earlier outputs keep their bytes; no temporary, no new file


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("repair", REPAIRS)
def test_repaired_sources_give_byte_identical_outputs(built: Workspace, kind: str, repair: str) -> None:
    clean = tree(built.path, skip=("sources",))
    source = built.path / source_path(kind)
    source.write_bytes(REPAIRS[repair](source.read_bytes()))
    result = built.stage("raw")
    assert (result.returncode, result.stderr) == (0, "")
    # The records are byte-identical; only the provenance names the repaired file's own sha256.
    assert without_provenance(tree(built.path, skip=("sources",))) == without_provenance(clean)
    assert_only_the_checksum_differs(built.path / "data" / "raw" / "sources.json", kind)
    if repair == "bom and crlf":  # run the rest to be sure
        built.pipeline()
        assert without_provenance(tree(built.path, skip=("sources",))) == without_provenance(clean)


def without_provenance(files: dict[str, str]) -> dict[str, str]:
    """The files but the ones recording each source's checksum: the raw and merged sources.json, the card."""
    return {name: md5 for name, md5 in files.items() if Path(name).name not in ("sources.json", "README.md")}


def assert_only_the_checksum_differs(manifest: Path, kind: str) -> None:
    """The raw manifest names the repaired file's own sha256."""
    sources = json.loads(manifest.read_text())["sources"]
    source = next(entry for entry in sources.values() if entry.get("path") == source_path(kind))
    assert source["sha256"] == hashlib.sha256((manifest.parents[2] / source_path(kind)).read_bytes()).hexdigest()


def test_a_control_character_in_user_text_cannot_break_the_one_line_error(built: Workspace) -> None:
    category = "qa\nsecond line\u2028third"
    (built.path / source_path("jsonl")).write_bytes(KINDS["jsonl"]([GOOD[0], record(1, category=category), GOOD[2]]))
    assert_one_error_line(built.stage("raw"), f"{source_path('jsonl')}:2: category 'qa\\nsecond line\\u2028third' "
                                              f"is unknown; use one of {', '.join(CATEGORIES)}")


# --- bad params ---

@pytest.mark.parametrize("case", PARAMS_CASES, ids=[case.id for case in PARAMS_CASES])
def test_split_refuses_bad_params_in_one_line_and_leaves_everything_as_it_was(built: Workspace,
                                                                              case: ParamsCase) -> None:
    built.edit_params(case.edit)
    before = tree(built.path)
    # The data cases are refused after the shards were cut into a temporary directory: it must be gone too.
    assert_one_error_line(built.stage("split"), case.message)
    assert tree(built.path) == before


@pytest.mark.parametrize("case_id", ["typo splt", "shard key '$(touch x)'", "overlap"])
def test_every_stage_checks_the_whole_params_file_first(built: Workspace, case_id: str) -> None:
    case = PARAMS_CASE[case_id]
    assert case.stage == "params"
    built.edit_params(case.edit)
    before = tree(built.path)
    for result in [built.stage(name) for name in STAGES] + [built.module("params", "params.yaml")]:
        assert_one_error_line(result, case.message)
    assert tree(built.path) == before


# --- wrong arguments, missing inputs ---

MERGED = "data/merged/databricks-dolly-16k-ja.jsonl"


def stage_args(stage: str, old: str, new: str) -> tuple[str, list[str]]:
    """The module and arguments of a stage's command in dvc.yaml, with its argument ``old`` replaced by ``new``."""
    command = stage_command(PROJECT_ROOT / "dvc.yaml", stage)
    assert command[1] == "-m" and old in command[3:], command
    return command[2].removeprefix("src."), [new if arg == old else arg for arg in command[3:]]


ARGUMENT_CASES: list[tuple[str, str, list[str], str]] = [
    ("raw usage", "raw", ["params.yaml"], "usage: python3 -m src.raw PARAMS DVC_YAML DOWNLOADS OUT_DIR"),
    ("merge usage", "merge", [],
     "usage: python3 -m src.merge PARAMS RAW_DIR MERGED_OUT RECORD_INDEX_OUT PROVENANCE_OUT METRICS_OUT"),
    ("split usage", "split", ["params.yaml", MERGED],
     "usage: python3 -m src.split PARAMS DVC_YAML MERGED RECORD_INDEX PROVENANCE SHARD_PATH CARD METRICS "
     "SHARDS_TABLE CATEGORIES_TABLE LENGTHS_TABLE LEAKAGE_TABLE CONTAMINATION_TABLE"),
    ("params usage", "params", [], "usage: python3 -m src.params PARAMS"),
    ("plots_page usage", "plots_page", [], "usage: python3 -m src.plots_page OUT_HTML"),
    ("missing params file", *stage_args("raw", "params.yaml", "missing.yaml"), "missing.yaml: params file not found"),
    ("missing dvc.yaml", *stage_args("raw", "dvc.yaml", "missing.yaml"), "missing.yaml: cannot read the raw stage's deps"),
    ("missing raw directory", *stage_args("merge", "data/raw", "data/nothing"),
     "data/nothing/sources.json: missing or unreadable; run the raw stage (dvc repro raw)"),
    ("missing merged file", *stage_args("split", MERGED, "data/merged/nothing.jsonl"),
     "data/merged/nothing.jsonl: missing; run the merge stage (dvc repro merge)"),
    ("shard path without {shard}", *stage_args("split", SHARD_TEMPLATE.format("{shard}"), "data/shards/x.jsonl"),
     "data/shards/x.jsonl: the shard path must hold {shard} once, in the file name"),
]


@pytest.mark.parametrize(("module", "args", "expected"), [c[1:] for c in ARGUMENT_CASES],
                         ids=[c[0] for c in ARGUMENT_CASES])
def test_wrong_arguments_and_missing_inputs_are_one_line(built: Workspace, module: str, args: list[str],
                                                         expected: str) -> None:
    before = tree(built.path)
    assert_one_error_line(built.module(module, *args), expected)
    assert tree(built.path) == before


def test_merge_refuses_a_raw_directory_missing_a_source_file(built: Workspace) -> None:
    (built.path / "data/raw/extra.jsonl").unlink()
    before = tree(built.path)
    assert_one_error_line(built.stage("merge"), "data/raw/extra.jsonl: missing; run the raw stage (dvc repro raw)")
    assert tree(built.path) == before
