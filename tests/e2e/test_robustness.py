"""Robustness (issue 4): bad input gets one clear error line and touches nothing; faults and reruns stay byte-identical.

Three levels:
- the stage scripts run directly as subprocesses in a temporary directory (fast; most bad-input and params cases);
- the real `dvc repro` on a small pipeline of two path sources (a JSON array and JSON Lines), for a few cases;
- the real `dvc repro` on the default pipeline, for kills, concurrent runs, hand edits and determinism.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from src.schema import CATEGORIES
from src.sample import sample_records
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import Repo, base_environment, make_repo, ran_stages

pytestmark = pytest.mark.e2e

SCRIPT_TIMEOUT_SECONDS = 300
POLL_SECONDS = 0.002
POLL_LIMIT_SECONDS = 240.0
LOCK_REFUSALS = ("Unable to acquire lock", "is busy, it is being blocked by")


# ---------------------------------------------------------------------------------------------------------------------
# Helpers shared by all levels
# ---------------------------------------------------------------------------------------------------------------------

def is_temporary(path: Path) -> bool:
    """An atomic-write temporary (src/jsonl.py): '.NAME.XXXXXXXX.tmp' beside its target."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def temporaries(root: Path) -> list[str]:
    found = []
    for top in ("data", "metrics"):
        if (root / top).exists():
            found += [p.relative_to(root).as_posix() for p in (root / top).rglob("*") if is_temporary(p)]
    return sorted(found)


def outputs(root: Path) -> dict[str, bytes]:
    """Every file under data/ and metrics/ (temporaries included, so a stray one shows), but DVC's .gitignore files."""
    files = {}
    for top in ("data", "metrics"):
        if (root / top).exists():
            for path in sorted((root / top).rglob("*")):
                if path.is_file() and path.name != ".gitignore":
                    files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def digests(root: Path) -> dict[str, str]:
    return {name: hashlib.md5(content).hexdigest() for name, content in outputs(root).items()}


def assert_one_error_line(result: subprocess.CompletedProcess, expected: str) -> None:
    """A stage script's refusal: exit 1, nothing on stdout, exactly 'error: ...' on one line of stderr."""
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"error: {expected}\n")


def dump_yaml(path: Path, document: dict) -> None:
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")


def array_bytes(values: list) -> bytes:
    """A JSON array with element k (1-based) on line k + 1."""
    return ("[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in values) + "\n]\n").encode("utf-8")


def jsonl_bytes(values: list) -> bytes:
    """JSON Lines: element k (1-based) on line k."""
    return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values).encode("utf-8")


ENCODERS = {"array": array_bytes, "jsonl": jsonl_bytes}
EXTENSIONS = {"array": "json", "jsonl": "jsonl"}


def kill_group_when(process: subprocess.Popen, ready: Callable[[], bool], delay: float = 0.0) -> bool:
    """Poll (bounded) until ``ready()`` or the process ends; then wait ``delay`` and SIGKILL the process's group.

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
    if seen and delay:
        time.sleep(delay)
    if process.poll() is None:  # not yet reaped, so its id cannot have been reused
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    return seen


# ---------------------------------------------------------------------------------------------------------------------
# Level 1: the stage scripts, run directly in a temporary workspace
# ---------------------------------------------------------------------------------------------------------------------

MERGED = "data/merged/merged.jsonl"
MERGE_METRICS = "metrics/merge.json"
SOURCE_RECORDS = list(sample_records(30, 3))
BAD = 7  # the number (1-based) of the record made bad


@dataclass
class Workspace:
    """A directory with params.yaml, a dvc.yaml declaring the path sources, and the outputs of the stage scripts."""

    path: Path

    def run(self, module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})}
        return subprocess.run([sys.executable, "-m", f"src.{module}", *args], cwd=self.path, env=environment,
                              capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)

    def raw(self) -> subprocess.CompletedProcess:
        return self.run("raw", "params.yaml", "dvc.yaml", "downloads", "data/raw")

    def merge(self) -> subprocess.CompletedProcess:
        return self.run("merge", "params.yaml", "data/raw", MERGED, MERGE_METRICS)

    def split(self, name: str) -> subprocess.CompletedProcess:
        return self.run("split", "params.yaml", name, MERGED, f"data/shards/shard-{name}.jsonl",
                        f"metrics/shards/{name}.json")

    @property
    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text(encoding="utf-8"))

    def set_params(self, document: dict) -> None:
        dump_yaml(self.path / "params.yaml", document)

    def pipeline(self) -> None:
        for result in [self.raw(), self.merge(), *[self.split(name) for name in self.params["split"]["shards"]]]:
            assert (result.returncode, result.stderr) == (0, ""), result.stderr


def write_workspace(path: Path, kind: str, data: bytes | None) -> Workspace:
    """A workspace whose one source 'main' is sources/main.json (array) or .jsonl, split in two shards of 15."""
    (path / "sources").mkdir(parents=True)
    source = f"sources/main.{EXTENSIONS[kind]}"
    if data is not None:
        (path / source).write_bytes(data)
    dump_yaml(path / "dvc.yaml", {"stages": {"raw": {"deps": ["src/raw.py", source]}}})
    dump_yaml(path / "params.yaml", {
        "raw": {"sources": {"main": {"path": source}}},
        "merge": {"drop_duplicates": False},
        "split": {"count": 2, "allow_gaps": False,
                  "shards": {"1_of_2": {"start": 0, "stop": 15}, "2_of_2": {"start": 15, "stop": 30}}},
    })
    return Workspace(path)


@pytest.fixture(scope="module")
def built_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per kind, a workspace with a complete, good run of every stage (so there are outputs to protect)."""
    root = tmp_path_factory.mktemp("workspaces")
    templates = {}
    for kind in ENCODERS:
        workspace = write_workspace(root / kind, kind, ENCODERS[kind](SOURCE_RECORDS))
        workspace.pipeline()
        templates[kind] = workspace.path
    return templates


@pytest.fixture
def built(tmp_path: Path, built_templates: dict[str, Path]) -> Callable[[str], Workspace]:
    """A fresh copy (for this test alone) of the built workspace of a kind."""

    def build(kind: str) -> Workspace:
        shutil.copytree(built_templates[kind], tmp_path / kind, symlinks=True)
        return Workspace(tmp_path / kind)

    return build


# --- bad sources: (id, kinds, bytes of the bad file or None for missing, expected message) ---

SURROGATE_MARK, BAD_UTF8_MARK = "@@LONE-SURROGATE@@", "@@BAD-UTF8@@"
MARKS = {SURROGATE_MARK.encode(): b"\\ud800", BAD_UTF8_MARK.encode(): b"\xff\xfe"}


def with_bad_record(kind: str, change: Callable[[dict], object]) -> bytes:
    values = [change(r) if n == BAD else r for n, r in enumerate(SOURCE_RECORDS, 1)]
    data = ENCODERS[kind](values)
    for mark, replacement in MARKS.items():
        data = data.replace(mark, replacement)
    return data


def record_at(kind: str, file: str, number: int = BAD) -> str:
    return f"{file}:{number + 1} (record {number})" if kind == "array" else f"{file}:{number}"


def line_of(kind: str, number: int = BAD) -> int:
    return number + 1 if kind == "array" else number


def cut_inside_output(kind: str) -> tuple[bytes, int]:
    """The file cut just after the opening quote of the bad record's output; and that quote's column."""
    data = ENCODERS[kind](SOURCE_RECORDS).decode("utf-8")
    line = data.splitlines()[line_of(kind) - 1]
    column = line.index('"output": "') + len('"output": ') + 1
    offset = data.index(line) + column
    return data[:offset].encode("utf-8"), column


def unquote_category(kind: str) -> tuple[bytes, int]:
    data = ENCODERS[kind](SOURCE_RECORDS).decode("utf-8")
    line = data.splitlines()[line_of(kind) - 1]
    broken = line.replace('"category": "', '"category": ', 1)
    return data.replace(line, broken, 1).encode("utf-8"), broken.index('"category": ') + len('"category": ') + 1


EVERY_FIELD = "every record needs index, instruction, input, output, category"

RECORD_CASES: list[tuple[str, Callable[[dict], object], str]] = [
    ("missing output", lambda r: {k: v for k, v in r.items() if k != "output"},
     f"field 'output' is missing; {EVERY_FIELD}"),
    ("missing index", lambda r: {k: v for k, v in r.items() if k != "index"}, f"field 'index' is missing; {EVERY_FIELD}"),
    ("null input", lambda r: {**r, "input": None}, "field 'input' is null; it must be a string"),
    ("number output", lambda r: {**r, "output": 42}, "field 'output' is a number; it must be a string"),
    ("list instruction", lambda r: {**r, "instruction": ["a", "b"]}, "field 'instruction' is a list; it must be a string"),
    ("number index", lambda r: {**r, "index": 7}, "field 'index' is a number; it must be a string"),
    ("empty instruction", lambda r: {**r, "instruction": ""}, "field 'instruction' is empty; 'instruction' must have text"),
    ("blank output", lambda r: {**r, "output": " \n\u3000"}, "field 'output' is empty; 'output' must have text"),
    ("unknown category", lambda r: {**r, "category": "Open_QA"},
     f"category 'Open_QA' is unknown; use one of {', '.join(CATEGORIES)}"),
    ("duplicate index", lambda r: {**r, "index": SOURCE_RECORDS[2]["index"]},
     f"index '{SOURCE_RECORDS[2]['index']}' appears twice in source 'main'; give every record its own index"),
    ("lone surrogate escape", lambda r: {**r, "output": SURROGATE_MARK},
     "field 'output' holds a lone surrogate escape (\\ud800-\\udfff) that is not valid UTF-8; fix or remove that escape"),
    ("not an object", lambda r: [r], "expected a JSON object with fields index, instruction, input, output, category, "
                                     "got a list"),
]


def file_cases() -> list[tuple[str, str, bytes | None, str]]:
    cases = []
    for kind in ENCODERS:
        file = f"sources/main.{EXTENSIONS[kind]}"
        cut, column = cut_inside_output(kind)
        malformed, malformed_column = unquote_category(kind)
        cases += [
            (f"{kind}: missing file", kind, None, f"{file}: file not found; check the source's path"),
            (f"{kind}: empty file", kind, b"", f"{file}: the file is empty; it must hold a JSON array of records or "
                                               "JSON Lines"),
            (f"{kind}: not an array or objects", kind, b'"records"\n',
             f"{file}: expected a JSON array of records or JSON Lines objects, but the file starts with '\"'"),
            (f"{kind}: utf-16", kind, ENCODERS[kind](SOURCE_RECORDS).decode("utf-8").encode("utf-16"),
             f"{file}: the file is UTF-16, not UTF-8; save it as UTF-8"),
            (f"{kind}: invalid utf-8", kind, with_bad_record(kind, lambda r: {**r, "instruction": BAD_UTF8_MARK}),
             f"{file}:{line_of(kind)}: invalid UTF-8 bytes; save the file as UTF-8"),
        ]
        if kind == "array":
            cases += [
                ("array: truncated", kind, cut,
                 f"{file}:{line_of(kind)}: record {BAD} is truncated (the file ends before it is closed); fix the JSON there"),
                ("array: malformed", kind, malformed,
                 f"{file}:{line_of(kind)}: record {BAD} is malformed (expecting value); fix the JSON there"),
                ("array: no records", kind, b"[\n]\n", f"{file}:2: the JSON array holds no records; a source needs at "
                                                       "least one"),
                ("array: data after the array", kind, array_bytes(SOURCE_RECORDS) + b"{}\n",
                 f"{file}:{len(SOURCE_RECORDS) + 3}: unexpected data after the JSON array; remove it"),
            ]
        else:
            blank = jsonl_bytes(SOURCE_RECORDS[:BAD - 1]) + b"\n" + jsonl_bytes(SOURCE_RECORDS[BAD - 1:])
            cases += [
                ("jsonl: truncated", kind, cut, f"{file}:{BAD}: truncated JSON (the file ends before it is closed, column "
                                                f"{column}); each line must hold one complete JSON object"),
                ("jsonl: malformed", kind, malformed, f"{file}:{BAD}: malformed JSON (expecting value, column "
                                                      f"{malformed_column}); each line must hold one complete JSON object"),
                ("jsonl: blank line inside", kind, blank, f"{file}:{BAD}: blank line inside JSON Lines; remove it"),
                ("jsonl: CRLF blank line inside", kind, blank.replace(b"\n", b"\r\n"),
                 f"{file}:{BAD}: blank line inside JSON Lines; remove it"),
            ]
    for kind in ENCODERS:
        file = f"sources/main.{EXTENSIONS[kind]}"
        for name, change, problem in RECORD_CASES:
            cases.append((f"{kind}: {name}", kind, with_bad_record(kind, change), f"{record_at(kind, file)}: {problem}"))
    return cases


FILE_CASES = file_cases()


@pytest.mark.parametrize(("kind", "data", "expected"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_raw_refuses_a_bad_source_in_one_line_and_changes_nothing(built, kind: str, data: bytes | None,
                                                                  expected: str) -> None:
    workspace = built(kind)
    before = outputs(workspace.path)
    source = workspace.path / f"sources/main.{EXTENSIONS[kind]}"
    if data is None:
        source.unlink()
    else:
        source.write_bytes(data)
    assert_one_error_line(workspace.raw(), expected)
    assert outputs(workspace.path) == before  # old outputs intact, and no temporary left behind
    assert temporaries(workspace.path) == []


REPAIRS: dict[str, Callable[[bytes], bytes]] = {
    "utf-8 BOM": lambda data: codecs.BOM_UTF8 + data,
    "CRLF": lambda data: data.replace(b"\n", b"\r\n"),
    "BOM and CRLF": lambda data: codecs.BOM_UTF8 + data.replace(b"\n", b"\r\n"),
    "blank lines at the end": lambda data: data + b"\n \n\r\n",
    "no final newline": lambda data: data.rstrip(b"\n"),
}


@pytest.mark.parametrize("kind", ENCODERS)
@pytest.mark.parametrize("repair", REPAIRS)
def test_repaired_sources_give_byte_identical_outputs(built, kind: str, repair: str) -> None:
    workspace = built(kind)
    clean = outputs(workspace.path)
    source = workspace.path / f"sources/main.{EXTENSIONS[kind]}"
    source.write_bytes(REPAIRS[repair](source.read_bytes()))
    result = workspace.raw()
    assert (result.returncode, result.stderr) == (0, "")
    assert outputs(workspace.path) == clean  # data/raw/main.jsonl byte-identical, so everything after it too
    if repair == "BOM and CRLF":
        workspace.pipeline()
        assert outputs(workspace.path) == clean


# --- bad params: the stage refuses before writing; every stage refuses a document with a typo'd section ---

def with_split(**shards: tuple[int, int]) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        document["split"]["shards"] = {name: {"start": a, "stop": b} for name, (a, b) in shards.items()}
    return edit


def set_in(*keys: str, value: object) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def renamed_shard(new: str) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        shards = document["split"]["shards"]
        shards[new] = shards.pop("2_of_2")
    return edit


def add_key(key: str, value: object) -> Callable[[dict], None]:
    return lambda document: document.update({key: value})


NAME_RULE = ("must be K_of_N (like '1_of_2'); it names the file data/shards/databricks-dolly-16k-line_ja-K_of_N.jsonl, "
             "so no path separators or '..'")

PARAMS_CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("count is text", set_in("split", "count", value="two"), "split.count must be an integer, not 'two'"),
    ("count is a float", set_in("split", "count", value=2.5), "split.count must be an integer, not 2.5"),
    ("count is zero", set_in("split", "count", value=0), "split.count must be at least 1, not 0"),
    ("count is negative", set_in("split", "count", value=-2), "split.count must be at least 1, not -2"),
    ("shard names do not fit the count", with_split(**{"1_of_3": (0, 15), "2_of_3": (15, 30)}),
     "split.shards: shard '1_of_3' does not fit split.count 2; name the shards 1_of_2 ... 2_of_2"),
    ("fewer ranges than count", lambda d: (set_in("split", "count", value=3)(d),
                                           with_split(**{"1_of_3": (0, 15), "2_of_3": (15, 30)})(d)),
     "split.count is 3 but split.shards names 2 shards; make them agree (python3 -m src.reshard N rewrites both)"),
    ("start equals stop", with_split(**{"1_of_2": (0, 15), "2_of_2": (15, 15)}),
     "split.shards.2_of_2: start 15 must be below stop 15 (ranges are half-open [start, stop))"),
    ("start above stop", with_split(**{"1_of_2": (0, 15), "2_of_2": (30, 15)}),
     "split.shards.2_of_2: start 30 must be below stop 15 (ranges are half-open [start, stop))"),
    ("range past the end", with_split(**{"1_of_2": (0, 15), "2_of_2": (15, 31)}),
     "split.shards.2_of_2: stop 31 is past the end of the merged data (30 records); set it to at most 30"),
    ("ranges short of the end", with_split(**{"1_of_2": (0, 15), "2_of_2": (15, 29)}),
     "split.shards: records 29..29 are in no shard (after '2_of_2'); set its stop to 30 or set split.allow_gaps: true"),
    ("overlap", with_split(**{"1_of_2": (0, 16), "2_of_2": (15, 30)}),
     "split.shards: shard '2_of_2' [15, 30) overlaps shard '1_of_2' [0, 16) on records 15..15; "
     "start '2_of_2' at 16 or later"),
    ("gap", with_split(**{"1_of_2": (0, 14), "2_of_2": (15, 30)}),
     "split.shards: records 14..14 are in no shard (gap after shard '1_of_2', before '2_of_2'); "
     "start '2_of_2' at 14 or set split.allow_gaps: true"),
    ("start is text", set_in("split", "shards", "1_of_2", "start", value="0"),
     "split.shards.1_of_2.start must be an integer, not '0'"),
    ("stop is null", set_in("split", "shards", "1_of_2", "stop", value=None),
     "split.shards.1_of_2.stop must be an integer, not None"),
    ("typo in a range key", lambda d: d["split"]["shards"]["1_of_2"].update(sotp=15),
     "split.shards.1_of_2: unknown key 'sotp'; did you mean 'stop'?"),
    *[(f"shard name {name!r}", renamed_shard(name), f"split.shards: shard name {name!r} {NAME_RULE}")
      for name in ["../x", "../../../outside", "/tmp/x", "a/2_of_2", "2_of_2/..", "..\\x", "$(touch pwned)",
                   "; touch pwned", "`touch pwned`", "2_of_2 && touch pwned", "2_of_2\ntouch pwned"]],
    ("typo splt", add_key("splt", {"count": 3}), "params.yaml: unknown top-level key 'splt'; did you mean 'split'?"),
    ("typo Merge", add_key("Merge", {"drop_duplicates": True}),
     "params.yaml: unknown top-level key 'Merge'; did you mean 'merge'?"),
    ("typo allow_gap", set_in("split", "allow_gap", value=True), "split: unknown key 'allow_gap'; did you mean 'allow_gaps'?"),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in PARAMS_CASES], ids=[c[0] for c in PARAMS_CASES])
def test_split_refuses_bad_params_in_one_line_and_changes_nothing(built, edit, expected: str) -> None:
    workspace = built("jsonl")
    before = outputs(workspace.path)
    document = workspace.params
    edit(document)
    workspace.set_params(document)
    assert_one_error_line(workspace.split("1_of_2"), expected)
    assert outputs(workspace.path) == before
    assert temporaries(workspace.path) == []
    assert sorted(p.name for p in workspace.path.iterdir()) == ["data", "dvc.yaml", "metrics", "params.yaml", "sources"]


@pytest.mark.parametrize("case", ["typo splt", "shard name '$(touch pwned)'", "count is zero", "overlap"])
def test_every_stage_checks_the_whole_params_file_first(built, case: str) -> None:
    edit, expected = next(c[1:] for c in PARAMS_CASES if c[0] == case)
    workspace = built("array")
    before = outputs(workspace.path)
    document = workspace.params
    edit(document)
    workspace.set_params(document)
    for result in (workspace.raw(), workspace.merge(), workspace.run("params", "params.yaml")):
        assert_one_error_line(result, expected)
    assert outputs(workspace.path) == before and temporaries(workspace.path) == []
    assert not (workspace.path / "pwned").exists()


def test_a_shell_command_as_shard_name_argument_is_refused_and_never_run(built) -> None:
    workspace = built("jsonl")
    before = outputs(workspace.path)
    for name in ["$(touch pwned)", "; touch pwned", "`touch pwned`"]:
        assert_one_error_line(workspace.split(name), f"split.shards has no shard '{name}'; known: 1_of_2, 2_of_2")
    assert outputs(workspace.path) == before
    assert not (workspace.path / "pwned").exists()


@pytest.mark.parametrize(("module", "args", "expected"), [
    ("raw", ["params.yaml"], "usage: python3 -m src.raw PARAMS DVC_YAML DOWNLOADS OUT_DIR"),
    ("merge", [], "usage: python3 -m src.merge PARAMS RAW_DIR MERGED_OUT METRICS_OUT"),
    ("split", ["params.yaml", "1_of_2"], "usage: python3 -m src.split PARAMS SHARD_NAME MERGED SHARD_OUT METRICS_OUT"),
    ("params", [], "usage: python3 -m src.params PARAMS"),
    ("raw", ["missing.yaml", "dvc.yaml", "downloads", "data/raw"], "missing.yaml: params file not found"),
    ("raw", ["params.yaml", "missing.yaml", "downloads", "data/raw"], "missing.yaml: cannot read the raw stage's deps"),
    ("merge", ["params.yaml", "data/nothing", MERGED, MERGE_METRICS],
     "data/nothing/sources.json: missing or unreadable; run the raw stage (dvc repro raw)"),
    ("split", ["params.yaml", "1_of_2", "data/merged/nothing.jsonl", "data/shards/shard-1_of_2.jsonl",
               "metrics/shards/1_of_2.json"],
     "data/merged/nothing.jsonl: cannot read (No such file or directory); run the merge stage (dvc repro merge)"),
    ("split", ["params.yaml", "3_of_2", MERGED, "data/shards/shard-3_of_2.jsonl", "metrics/shards/3_of_2.json"],
     "split.shards has no shard '3_of_2'; known: 1_of_2, 2_of_2"),
])
def test_wrong_arguments_and_missing_inputs_are_one_line(built, module: str, args: list[str], expected: str) -> None:
    workspace = built("jsonl")
    before = outputs(workspace.path)
    assert_one_error_line(workspace.run(module, *args), expected)
    assert outputs(workspace.path) == before


def test_merge_refuses_a_raw_directory_missing_a_source_file(built) -> None:
    workspace = built("jsonl")
    (workspace.path / "data/raw/main.jsonl").unlink()
    before = outputs(workspace.path)
    assert_one_error_line(workspace.merge(), "data/raw/main.jsonl: missing; run the raw stage (dvc repro raw)")
    assert outputs(workspace.path) == before


def test_a_control_character_in_user_text_cannot_break_the_one_line_error(built) -> None:
    workspace = built("jsonl")
    source = workspace.path / "sources/main.jsonl"
    source.write_bytes(with_bad_record("jsonl", lambda r: {**r, "category": "qa\nsecond line\u2028third"}))
    assert_one_error_line(workspace.raw(), f"sources/main.jsonl:{BAD}: category 'qa\\nsecond line\\u2028third' is "
                                           f"unknown; use one of {', '.join(CATEGORIES)}")


# --- kills: a stage script killed at any point leaves the old or the new output, never a partial one ---

OLD_SEEDS = {"dolly_ja": 1, "additions": 2}
STAGES = ["raw", "merge", "split@1_of_4"]
STAGE_OUTPUTS = {
    "raw": ["data/raw"],
    "merge": ["data/merged/databricks-dolly-16k-ja.jsonl", "metrics/merge.json"],
    "split@1_of_4": ["data/shards/databricks-dolly-16k-line_ja-1_of_4.jsonl", "metrics/shards/1_of_4.json"],
}
# Where each stage's main output is written first (src/jsonl.py): a '.NAME.XXXXXXXX.tmp' beside it.
STAGE_TEMPORARY = {
    "raw": ("data", ".raw."),
    "merge": ("data/merged", ".databricks-dolly-16k-ja.jsonl."),
    "split@1_of_4": ("data/shards", ".databricks-dolly-16k-line_ja-1_of_4.jsonl."),
}


def stage_command(stage: str) -> list[str]:
    """The stage's command exactly as dvc.yaml writes it (the last line, for a list of commands)."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    group, _, key = stage.partition("@")
    command = stages[group]["do"]["cmd"] if key else stages[group]["cmd"]
    command = (command[-1] if isinstance(command, list) else command).replace("${key}", key)
    words = command.split()
    assert words[:2] == ["python3", "-m"], command
    return [sys.executable, *words[1:]]


def script_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


def run_stage(path: Path, stage: str) -> None:
    result = subprocess.run(stage_command(stage), cwd=path, env=script_environment(), capture_output=True, text=True,
                            timeout=SCRIPT_TIMEOUT_SECONDS)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


def state_of(root: Path, output: str) -> dict[str, bytes] | bytes | None:
    """An output's bytes (for a directory: every file in it), or None when absent."""
    path = root / output
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes() if path.exists() else None


@pytest.fixture(scope="module")
def old_and_new(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two workspaces with the project's params.yaml and dvc.yaml: 'new' ran every stage with the project's params,
    'old' with other sample seeds (so old and new bytes differ everywhere)."""
    root = tmp_path_factory.mktemp("kills")
    for name in ("old", "new"):
        (root / name).mkdir()
        shutil.copy2(PROJECT_ROOT / "dvc.yaml", root / name / "dvc.yaml")
        shutil.copy2(PROJECT_ROOT / "params.yaml", root / name / "params.yaml")
    old = Workspace(root / "old")
    params = old.params
    for source, seed in OLD_SEEDS.items():
        params["raw"]["sources"][source]["sample"]["seed"] = seed
    old.set_params(params)
    for name in ("old", "new"):
        for stage in STAGES:
            run_stage(root / name, stage)
    return root / "old", root / "new"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_killed_at_any_point_leaves_old_or_new_and_the_rerun_is_byte_identical(
        tmp_path: Path, old_and_new: tuple[Path, Path], stage: str) -> None:
    old_root, new_root = old_and_new
    work = tmp_path / "work"
    shutil.copytree(old_root, work)
    shutil.copy2(new_root / "params.yaml", work / "params.yaml")
    for upstream in STAGES[:STAGES.index(stage)]:  # the stage's inputs are the new ones
        for output in STAGE_OUTPUTS[upstream]:
            shutil.rmtree(work / output) if (work / output).is_dir() else (work / output).unlink()
            copy = shutil.copytree if (new_root / output).is_dir() else shutil.copy2
            copy(new_root / output, work / output)
    old = {output: state_of(work, output) for output in STAGE_OUTPUTS[stage]}
    new = {output: state_of(new_root, output) for output in STAGE_OUTPUTS[stage]}
    assert all(old[output] != new[output] for output in old)
    directory, prefix = STAGE_TEMPORARY[stage]

    def writing() -> bool:
        folder = work / directory
        return any(name.startswith(prefix) and name.endswith(".tmp") for name in os.listdir(folder))

    caught_writing = []
    for delay in (0.0, 0.02, 0.1, 0.4, 1.0):
        process = subprocess.Popen(stage_command(stage), cwd=work, env=script_environment(), start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        caught_writing.append(kill_group_when(process, writing, delay))
        for output in STAGE_OUTPUTS[stage]:
            state = state_of(work, output)
            # A directory is swapped by two renames; a kill between them leaves it absent (never partial).
            allowed = [old[output], new[output]] + ([None] if output == "data/raw" else [])
            assert state in allowed, f"{output} holds partial or foreign bytes after a kill {delay} s into writing"
    assert caught_writing[0], "the first run was not caught while writing its output"

    # The next run sweeps whatever the killed runs left and writes exactly the clean result.
    run_stage(work, stage)
    assert temporaries(work) == []
    assert {output: state_of(work, output) for output in STAGE_OUTPUTS[stage]} == new


# ---------------------------------------------------------------------------------------------------------------------
# Level 2: `dvc repro` on a small pipeline of two path sources (sources/main.json, an array; sources/extra.jsonl)
# ---------------------------------------------------------------------------------------------------------------------

SMALL_MAIN = list(sample_records(30, 5))
SMALL_EXTRA = list(sample_records(10, 6))
SMALL_SHARDS = {f"{k}_of_4": {"start": 10 * (k - 1), "stop": 10 * k} for k in range(1, 5)}


def fresh_home(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir(parents=True)
    return base_environment(home)


@pytest.fixture(scope="module")
def small_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with two small path sources (40 records, 4 shards of 10), reproduced and committed."""
    root = tmp_path_factory.mktemp("small")
    repo = make_repo(root / "work" / "repo", fresh_home(root))
    (repo.path / "sources").mkdir()
    (repo.path / "sources/main.json").write_bytes(array_bytes(SMALL_MAIN))
    (repo.path / "sources/extra.jsonl").write_bytes(jsonl_bytes(SMALL_EXTRA))
    params = yaml.safe_load((repo.path / "params.yaml").read_text(encoding="utf-8"))
    params["raw"]["sources"] = {"main": {"path": "sources/main.json"}, "extra": {"path": "sources/extra.jsonl"}}
    params["split"]["shards"] = SMALL_SHARDS
    dump_yaml(repo.path / "params.yaml", params)
    pipeline = yaml.safe_load((repo.path / "dvc.yaml").read_text(encoding="utf-8"))
    pipeline["stages"]["raw"]["deps"] += ["sources/main.json", "sources/extra.jsonl"]
    dump_yaml(repo.path / "dvc.yaml", pipeline)
    repo.commit("two small path sources")
    repo.dvc("repro")
    repo.commit("reproduced")
    return root / "work"


@pytest.fixture
def small(small_template: Path, tmp_path: Path) -> Repo:
    """A copy of the small reproduced repository, for one test."""
    shutil.copytree(small_template, tmp_path / "work", symlinks=True)
    return Repo(tmp_path / "work" / "repo", fresh_home(tmp_path))


def edit_small_params(edit: Callable[[dict], None]) -> Callable[[Repo], None]:
    def apply(repo: Repo) -> None:
        document = yaml.safe_load((repo.path / "params.yaml").read_text(encoding="utf-8"))
        edit(document)
        dump_yaml(repo.path / "params.yaml", document)
    return apply


def write_source(name: str, data: bytes) -> Callable[[Repo], None]:
    return lambda repo: (repo.path / "sources" / name).write_bytes(data)


def _main_cut_in_record_5() -> bytes:
    data = array_bytes(SMALL_MAIN).decode("utf-8")
    line = data.splitlines()[5]  # record 5 is on line 6
    return data[:data.index(line) + line.index('"output": "') + len('"output": "')].encode("utf-8")


def _set_shard(name: str, key: str, value: int) -> Callable[[dict], None]:
    return lambda document: document["split"]["shards"][name].update({key: value})


DVC_CASES: list[tuple[str, Callable[[Repo], None], str, str]] = [
    ("array source truncated", write_source("main.json", _main_cut_in_record_5()), "raw",
     "sources/main.json:6: record 5 is truncated (the file ends before it is closed); fix the JSON there"),
    ("array source with a lone surrogate", write_source("main.json", array_bytes(
        [dict(r, instruction="@@") if n == 5 else r for n, r in enumerate(SMALL_MAIN, 1)]).replace(b'"@@"', b'"\\ud800"')),
     "raw", "sources/main.json:6 (record 5): field 'instruction' holds a lone surrogate escape (\\ud800-\\udfff) that "
            "is not valid UTF-8; fix or remove that escape"),
    ("jsonl source with a blank line", write_source("extra.jsonl", jsonl_bytes(SMALL_EXTRA[:3]) + b"\n" +
                                                    jsonl_bytes(SMALL_EXTRA[3:])),
     "raw", "sources/extra.jsonl:4: blank line inside JSON Lines; remove it"),
    ("jsonl source with an unknown category", write_source("extra.jsonl", jsonl_bytes(
        [dict(r, category="Open_QA") if n == 2 else r for n, r in enumerate(SMALL_EXTRA, 1)])),
     "raw", f"sources/extra.jsonl:2: category 'Open_QA' is unknown; use one of {', '.join(CATEGORIES)}"),
    ("typo in a source key", edit_small_params(lambda d: d["raw"]["sources"]["main"].update(
        pth=d["raw"]["sources"]["main"].pop("path"))), "params",
     "raw.sources.main: unknown key 'pth'; did you mean 'path'?"),
    ("overlapping ranges", edit_small_params(_set_shard("2_of_4", "start", 8)), "params",
     "split.shards: shard '2_of_4' [8, 20) overlaps shard '1_of_4' [0, 10) on records 8..9; start '2_of_4' at 10 or later"),
    ("a range past the end", edit_small_params(_set_shard("4_of_4", "stop", 41)), "split@4_of_4",
     "split.shards.4_of_4: stop 41 is past the end of the merged data (40 records); set it to at most 40"),
    ("a gap", edit_small_params(_set_shard("3_of_4", "start", 21)), "params",
     "split.shards: records 20..20 are in no shard (gap after shard '2_of_4', before '3_of_4'); "
     "start '3_of_4' at 20 or set split.allow_gaps: true"),
    ("count zero", edit_small_params(lambda d: d["split"].update(count=0)), "params",
     "split.count must be at least 1, not 0"),
]


@pytest.mark.parametrize(("edit", "stage", "expected"), [c[1:] for c in DVC_CASES], ids=[c[0] for c in DVC_CASES])
def test_dvc_repro_refuses_bad_input_keeps_dvc_lock_and_checkout_restores(small: Repo, edit, stage: str,
                                                                          expected: str) -> None:
    before, lock = outputs(small.path), small.read_bytes("dvc.lock")
    edit(small)
    failed = small.dvc("repro", check=False)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stdout + failed.stderr
    assert [line for line in failed.stderr.splitlines() if line.startswith("error: ")] == [f"error: {expected}"]
    assert f"failed to reproduce '{stage}'" in failed.stderr
    # dvc.lock records only stages that succeeded before the failure (say the params check, when the params are
    # valid and only the data shows a range is wrong); the failed stage's entry and all others are unchanged.
    succeeded = [name for name in ran_stages(failed.stdout) if name != stage]
    assert succeeded in ([], ["params"])
    if not succeeded:
        assert small.read_bytes("dvc.lock") == lock
    entries_before, entries_after = (yaml.safe_load(text)["stages"] for text in (lock, small.read_bytes("dvc.lock")))
    assert {name: entry for name, entry in entries_after.items() if name not in succeeded} == \
           {name: entry for name, entry in entries_before.items() if name not in succeeded}
    after = outputs(small.path)
    # DVC deletes a stage's outputs before running it: the failed stage's are absent, every other one is untouched.
    assert set(after) <= set(before) and all(after[name] == before[name] for name in after)
    assert temporaries(small.path) == []
    assert f"{stage}:" in small.dvc("status").stdout
    small.dvc("checkout")
    assert outputs(small.path) == before


def test_dvc_repro_repairs_bom_and_crlf_to_byte_identical_outputs(small: Repo) -> None:
    before, lock = outputs(small.path), yaml.safe_load(small.read_bytes("dvc.lock"))
    main, extra = small.path / "sources/main.json", small.path / "sources/extra.jsonl"
    main.write_bytes(codecs.BOM_UTF8 + main.read_bytes().replace(b"\n", b"\r\n"))
    extra.write_bytes(codecs.BOM_UTF8 + extra.read_bytes().replace(b"\n", b"\r\n") + b"\r\n\r\n")
    result = small.dvc("repro")
    assert "Running stage 'raw'" in result.stdout and "Running stage 'merge'" not in result.stdout
    assert outputs(small.path) == before
    after = yaml.safe_load(small.read_bytes("dvc.lock"))
    assert {name: stage.get("outs") for name, stage in after["stages"].items()} == \
           {name: stage.get("outs") for name, stage in lock["stages"].items()}
    assert small.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def cache_file(repo: Repo, md5: str) -> Path:
    return repo.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def test_a_hand_edited_output_is_reported_restored_and_never_reaches_the_cache(small: Repo) -> None:
    assert small.dvc("config", "cache.type").stdout.strip() == "reflink,copy"
    shard = small.path / "data/shards/databricks-dolly-16k-line_ja-2_of_4.jsonl"
    original, lock = shard.read_bytes(), small.read_bytes("dvc.lock")
    md5 = hashlib.md5(original).hexdigest()
    cached = cache_file(small, md5)
    assert cached.read_bytes() == original
    assert not shard.is_symlink() and os.stat(shard).st_ino != os.stat(cached).st_ino  # a copy, not a link

    with shard.open("r+b") as stream:  # edit in place: with a hard link this would write into the cache
        stream.write(b'{"instruction": "tampered"')
    status = small.dvc("status").stdout
    assert re.search(r"split@2_of_4:\s+changed outs:\s+modified:\s+data/shards/databricks-dolly-16k-line_ja-2_of_4"
                     r"\.jsonl", status), status
    assert hashlib.md5(cached.read_bytes()).hexdigest() == md5
    refused = small.dvc("checkout", check=False)  # DVC does not overwrite unsaved edits without --force
    assert refused.returncode != 0 and shard.read_bytes() != original
    small.dvc("checkout", "--force")
    assert shard.read_bytes() == original

    with shard.open("ab") as stream:
        stream.write(b"one more line\n")
    small.dvc("repro")  # the stage's output changed: rerun (or restored from the run cache)
    assert shard.read_bytes() == original
    assert hashlib.md5(cached.read_bytes()).hexdigest() == md5
    assert small.read_bytes("dvc.lock") == lock
    assert small.dvc("status").stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.parametrize("name", ["$(touch pwned)", "; touch pwned ;", "`touch pwned`"])
def test_dvc_never_hands_a_shell_command_in_a_shard_name_to_the_shell(small: Repo, name: str) -> None:
    before, lock = outputs(small.path), small.read_bytes("dvc.lock")
    edit_small_params(lambda d: d["split"]["shards"].update({name: d["split"]["shards"].pop("4_of_4")}))(small)
    failed = small.dvc("repro", check=False)
    assert failed.returncode != 0
    assert not (small.path / "pwned").exists(), "the shell ran a command taken from params.yaml"
    assert f"error: split.shards: shard name {name!r} must be K_of_N (like '1_of_4')" in failed.stderr
    assert small.read_bytes("dvc.lock") == lock
    assert set(outputs(small.path)) <= set(before)


@pytest.mark.parametrize("name", ["../x", "../../../../outside"])
def test_dvc_refuses_a_shard_name_that_leaves_data_shards(small: Repo, name: str) -> None:
    before, lock = outputs(small.path), small.read_bytes("dvc.lock")
    edit_small_params(lambda d: d["split"]["shards"].update({name: d["split"]["shards"].pop("4_of_4")}))(small)
    failed = small.dvc("repro", check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert small.read_bytes("dvc.lock") == lock
    assert outputs(small.path) == before
    written_outside = [p for p in small.path.parent.rglob("*.jsonl") if small.path not in p.parents]
    assert written_outside == []


# ---------------------------------------------------------------------------------------------------------------------
# Level 3: `dvc repro` on the default pipeline: determinism, kills, two runs at once
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
    """The default pipeline reproduced once (environment A): its dvc.lock and the md5 of every output file."""

    repo: Repo
    lock: bytes
    digests: dict[str, str]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    root = tmp_path_factory.mktemp("reference")
    repo = make_repo(root / "work" / "repo", fresh_home(root))
    committed = repo.read_bytes("dvc.lock")
    repo.dvc("repro", env=ENV_A)
    assert repo.read_bytes("dvc.lock") == committed, "the committed dvc.lock does not reproduce"
    return Reference(repo, committed, digests(repo.path))


def assert_reproduced(repo: Repo, reference: Reference) -> None:
    assert digests(repo.path) == reference.digests  # also: no stray temporary, no leftover file
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
                            env={**repo.env, **env_b()}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Running stage '../dvc.yaml:split@4_of_4'" in result.stdout
    assert_reproduced(repo, reference)
    for name, content in outputs(repo.path).items():
        for root in (repo.path, reference.repo.path, tmp_path):
            assert str(root).encode() not in content, f"{name} holds an absolute path"
        if name.endswith(".json"):
            assert not re.search(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d", content), f"{name} holds a timestamp"


def test_dvc_repro_killed_at_several_points_then_rerun_gives_the_clean_bytes(tmp_path: Path,
                                                                             reference: Reference) -> None:
    repo = make_repo(tmp_path / "work" / "repo", fresh_home(tmp_path))
    points = [("data", ".raw."), ("data/merged", ".databricks-dolly-16k-ja.jsonl."),
              ("data/shards", ".databricks-dolly-16k-line_ja-")]
    caught = []
    for directory, prefix in points:
        def writing() -> bool:
            folder = repo.path / directory
            return folder.is_dir() and any(n.startswith(prefix) and n.endswith(".tmp") for n in os.listdir(folder))

        with (tmp_path / "dvc.log").open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo.path, env=repo.env,
                                       stdout=log, stderr=log, start_new_session=True)
            caught.append(kill_group_when(process, writing))
        # Whatever was killed where: every output present is complete, byte for byte the clean run's.
        for name, digest in digests(repo.path).items():
            if not is_temporary(Path(name)) and not any(is_temporary(Path(part)) for part in Path(name).parts):
                assert digest == reference.digests[name], f"{name} is partial after a kill"
    assert caught[:2] == [True, True], "dvc repro was not caught writing data/raw and the merged file"

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
    codes = [process.wait(timeout=600) for process in processes]
    for code, log in zip(codes, logs):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text
        assert code == 0 or any(refusal in text for refusal in LOCK_REFUSALS), text
    repo.dvc("repro")
    assert temporaries(repo.path) == []
    assert_reproduced(repo, reference)
