"""What the robustness tests share (test_stage_errors, test_dvc_failures, test_interruptions): the small project
they break, one table of bad sources and one of bad params with the one-line error each must give, and snapshots
of what a run leaves on disk.

The expected messages are not typed here when a unit test's table already holds them: the bad files and records
come from tests/test_records.py, the bad params from tests/test_params.py. Only what those tables lack is written
here: a missing file, invalid UTF-8 and a lone surrogate in a record, a shard key refused at 4 shards, and the ranges
that only the small project's 40 merged records show to be wrong. A case is picked from an imported table by its id,
so a unit case renamed or removed fails here at import, not silently.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from src.sources.sample import sample_records
from tests.core.test_config import BAD_SHARD_NAMES, DOCUMENT_ERRORS, SOURCE_ERRORS, SPLIT_ERRORS
from tests.e2e.repo import base_environment
from tests.project import PROJECT_ROOT
from tests.sources.test_readers import FILE_ERRORS, GOOD, KINDS, LONE_SURROGATE, RECORD_ERRORS, record, where

# ---------------------------------------------------------------------------------------------------------------------
# The small project: the project's dvc.yaml and params.yaml with two path sources, 40 records in 4 shards of 10
# ---------------------------------------------------------------------------------------------------------------------

SMALL_SOURCES = {  # source name: (path, kind of file, records)
    "main": ("sources/main.json", "array", list(sample_records(30, 5))),
    "extra": ("sources/extra.jsonl", "jsonl", list(sample_records(10, 6))),
}
SOURCE_OF_KIND = {kind: name for name, (_, kind, _) in SMALL_SOURCES.items()}
SMALL_SHARDS = {"shard1": 10, "shard2": 20, "shard3": 30, "shard4": 40}
assert sum(len(records) for _, _, records in SMALL_SOURCES.values()) == SMALL_SHARDS["shard4"] == 40


def source_path(kind: str) -> str:
    """The small project's source file of a kind ("array" or "jsonl")."""
    return SMALL_SOURCES[SOURCE_OF_KIND[kind]][0]


def dump_yaml(path: Path, document: object) -> None:
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def make_small(root: Path) -> None:
    """Turn the project's dvc.yaml and params.yaml in ``root`` into the small project, sources included."""
    (root / "sources").mkdir()
    params, pipeline = load_yaml(root / "params.yaml"), load_yaml(root / "dvc.yaml")
    params["raw"]["sources"] = {name: {"path": path} for name, (path, _, _) in SMALL_SOURCES.items()}
    params["split"].update(count=4, allow_gaps=False, shards=dict(SMALL_SHARDS))
    for path, kind, records in SMALL_SOURCES.values():
        (root / path).write_bytes(KINDS[kind](records))
        pipeline["stages"]["raw"]["deps"].append(path)
    dump_yaml(root / "params.yaml", params)
    dump_yaml(root / "dvc.yaml", pipeline)


# ---------------------------------------------------------------------------------------------------------------------
# Bad sources: each refused by the raw stage with one line
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceCase:
    """The bytes that replace the small project's source of ``kind`` (None: the file is deleted), and the error,
    with {f} standing for the file's path."""

    id: str
    kind: str
    data: bytes | None
    message: str

    def expected(self) -> str:
        return self.message.format(f=source_path(self.kind))


def _by_id(table: list[tuple], ids: list[str]) -> list[tuple]:
    cases = {case[0]: case for case in table}
    return [cases[case_id] for case_id in ids]


# tests/test_records.py FILE_ERRORS: one case per way a file is unreadable (the unit test has every variant).
_FILE_IDS = ["empty", "a string", "utf-16", "empty array", "array of strings", "array truncated inside a record",
             "array without its closing bracket", "array with an unquoted value", "array with a missing comma",
             "array with a trailing comma", "array followed by more data", "array nested too deeply",
             "jsonl with an unquoted value", "jsonl truncated in the last line", "jsonl with an array line",
             "jsonl with a blank line", "jsonl with a CRLF blank line", "jsonl nested too deeply",
             "array with a repeated name", "array with a repeated name in a nested object",
             "jsonl with a repeated name on the first line", "jsonl with a repeated name on the middle line",
             "jsonl with a repeated name on the last line", "jsonl with a repeated name and escaped quotes",
             "jsonl with a repeated name among values of other types"]
# tests/test_records.py RECORD_ERRORS: one case per kind of bad record, each in both kinds of file.
_RECORD_IDS = ["missing output", "missing index", "input is null", "output is a number", "instruction is a list",
               "index is a boolean", "category is an object", "empty instruction", "blank output", "empty index",
               "category 'Open_QA'", "duplicate index", "not an object"]


def _file_kind(name: str) -> str:
    return "jsonl" if name.endswith(".jsonl") else "array"


def _bad_record_file(kind: str, bad: object) -> bytes:
    """The layout of tests/test_records.py: the bad record is the second of three (the first is already streamed
    out when it is met)."""
    return KINDS[kind]([GOOD[0], bad, GOOD[2]])


def _with_bytes(kind: str, field: str, raw: bytes) -> bytes:
    """The bad-record file with ``raw`` spliced in as the value of the second record's ``field``."""
    return _bad_record_file(kind, record(1, **{field: "@@MARK@@"})).replace(b"@@MARK@@", raw)


def _escaped(text: str) -> str:
    """``text`` inside a message template: its braces are literal."""
    return text.replace("{", "{{").replace("}", "}}")


def _source_cases() -> list[SourceCase]:
    cases = [SourceCase(case_id, _file_kind(name), data, message)
             for case_id, name, data, message in _by_id(FILE_ERRORS, _FILE_IDS)]
    for kind in KINDS:
        line = where(kind, "{f}").split(" ")[0]  # "{f}:3" (array) or "{f}:2" (jsonl)
        name = SOURCE_OF_KIND[kind]
        cases += [SourceCase(f"{kind}: {case_id}", kind, _bad_record_file(kind, bad),
                             f"{where(kind, '{f}')}: " + _escaped(problem.replace("source 'src'", f"source '{name}'")))
                  for case_id, bad, problem in _by_id(RECORD_ERRORS, _RECORD_IDS)]
        cases += [
            SourceCase(f"{kind}: missing file", kind, None, "{f}: file not found; check the source's path"),
            SourceCase(f"{kind}: invalid utf-8", kind, _with_bytes(kind, "output", b"\xff\xfe"),
                       f"{line}: invalid UTF-8 bytes; save the file as UTF-8"),
            SourceCase(f"{kind}: lone surrogate escape", kind, _with_bytes(kind, "instruction", b"\\ud800"),
                       f"{where(kind, '{f}')}: field 'instruction' {LONE_SURROGATE}"),
        ]
    return cases


SOURCE_CASES = _source_cases()
SOURCE_CASE = {case.id: case for case in SOURCE_CASES}
assert len(SOURCE_CASE) == len(SOURCE_CASES), "source case ids must be unique"

# ---------------------------------------------------------------------------------------------------------------------
# Bad params: each refused with one line, by every stage and by the `params` stage, or (checked against the merged
# data) by the split stage alone
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamsCase:
    """An edit of the small project's params.yaml (text in, text out); the error; the stage that refuses it under
    `dvc repro` ("params": every stage refuses it before reading any data; "split": only the data shows it)."""

    id: str
    edit: Callable[[str], str]
    message: str
    stage: str = "params"


def _edit_document(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        document = yaml.safe_load(text)
        change(document)
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return edit


def _set_split(value: object) -> Callable[[str], str]:
    return _edit_document(lambda document: document.update(split=value))


def _add_source(name: str, spec: object) -> Callable[[str], str]:
    return _edit_document(lambda document: document["raw"]["sources"].update({name: spec}))


def _rename_last_shard(key: object) -> Callable[[str], str]:
    def change(document: dict) -> None:
        shards = document["split"]["shards"]
        shards[key] = shards.pop("shard4")
    return _edit_document(change)


def _set_shard(key: str, value: object) -> Callable[[str], str]:
    return _edit_document(lambda document: document["split"]["shards"].update({key: value}))


def _not_a_shard_key(key: str) -> str:
    """The error for a shard key that is not shard1 ... shard4 (tests/test_params.py states the rule for one
    shard)."""
    return f"split.shards: {key!r} is not a shard key; name the shards shard1 ... shard4"


# tests/test_params.py SPLIT_ERRORS: the whole split section replaced.
_SPLIT_IDS = ["count is text", "count is a float", "count is zero", "count is negative", "count below the names",
              "fewer ranges than count", "shard number above count", "start equals stop", "start above stop",
              "start is text", "stop is null", "typo in a range key", "range as a list",
              "stop form: a stop below the previous", "overlap", "gap between shards", "typo in a split key",
              "integer shard name"]
# tests/test_params.py DOCUMENT_ERRORS: the whole file replaced.
_DOCUMENT_IDS = ["typo splt", "typo Split", "typo mrege", "empty file", "a tab", "python object tag"]
# tests/test_params.py BAD_SHARD_NAMES: keys that would leave data/shards/ or mean something to a shell.
_SHARD_KEYS = ["../x", "/tmp/x", "shard1/..", "$(touch x)", "`touch x`", "; rm -rf x", "shard1\n", "${key}"]
# tests/test_params.py SOURCE_ERRORS: a third source added.
_SOURCE_IDS = ["typo pth", "source name '../evil'"]

def _replace_document(text: str) -> Callable[[str], str]:
    """An edit that replaces the whole params file with ``text``."""
    return lambda _old: text


PARAMS_CASES: list[ParamsCase] = [
    *[ParamsCase(case_id, _set_split(value), message) for case_id, value, message in _by_id(SPLIT_ERRORS, _SPLIT_IDS)],
    *[ParamsCase(case_id, _replace_document(text), message)
      for case_id, text, message in _by_id(DOCUMENT_ERRORS, _DOCUMENT_IDS)],
    *[ParamsCase(f"shard key {key!r}", _rename_last_shard(key), _not_a_shard_key(key))
      for key in BAD_SHARD_NAMES if key in _SHARD_KEYS],
    *[ParamsCase(case_id, _add_source(name, spec), message)
      for case_id, name, spec, message in _by_id(SOURCE_ERRORS, _SOURCE_IDS)],
    # As docs/errors.md shows it: a gap the small project's own numbers name.
    ParamsCase("a gap before shard3", _set_shard("shard3", {"start": 21, "stop": 30}),
               "split.shards: records 20..20 are in no shard (gap after 'shard2', before 'shard3'); start 'shard3' at "
               "20 or set split.allow_gaps: true"),
    # Valid params whose ranges do not fit the 40 merged records: refused by the split stage, after reading them.
    ParamsCase("stop past the end", _set_shard("shard4", 41),
               "split.shards.shard4: stop 41 is past the end of the merged data (40 records); set it to at most 40 "
               "(python3 -m src.reshard 4 does)", stage="split"),
    ParamsCase("records after the last shard", _set_shard("shard4", 39),
               "split.shards: records 39..39 are in no shard (after 'shard4'); set its stop to 40 (python3 -m "
               "src.reshard 4 does) or set split.allow_gaps: true", stage="split"),
]
PARAMS_CASE = {case.id: case for case in PARAMS_CASES}
assert len(PARAMS_CASE) == len(PARAMS_CASES), "params case ids must be unique"
assert len(PARAMS_CASES) == len(_SPLIT_IDS) + len(_DOCUMENT_IDS) + len(_SHARD_KEYS) + len(_SOURCE_IDS) + 3

# ---------------------------------------------------------------------------------------------------------------------
# The stages as dvc.yaml runs them
# ---------------------------------------------------------------------------------------------------------------------

def stage_command(pipeline: Path, stage: str) -> list[str]:
    """A stage's command exactly as ``pipeline`` (a dvc.yaml) writes it, run by this interpreter."""
    words = load_yaml(pipeline)["stages"][stage]["cmd"].split()
    assert words[:2] == ["python3", "-m"], words
    return [sys.executable, *words[1:]]


def stage_outs(pipeline: Path, stage: str) -> dict[str, bool]:
    """The outputs, metrics and plots ``pipeline`` (a dvc.yaml) declares for a stage: {path: whether DVC caches it}."""
    entry = load_yaml(pipeline)["stages"][stage]
    outs = {}
    for out in entry.get("outs", []) + entry.get("metrics", []) + entry.get("plots", []):
        path, options = next(iter(out.items())) if isinstance(out, dict) else (out, {})
        outs[path] = options.get("cache", True)
    return outs


def script_environment() -> dict[str, str]:
    """The environment to run a stage script outside DVC: the project's src/ importable."""
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


# ---------------------------------------------------------------------------------------------------------------------
# What a run leaves on disk
# ---------------------------------------------------------------------------------------------------------------------

OUTPUT_DIRECTORIES = ("data", "metrics", "plots")


def is_temporary(relative: str) -> bool:
    """Inside an atomic-write temporary (src/output/files.py): '.NAME.XXXXXXXX.tmp' beside its target."""
    return any(part.startswith(".") and part.endswith(".tmp") for part in Path(relative).parts)


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Everything under ``root`` by relative path: a file's md5, or "directory" (so that a stray temporary, even an
    empty one, or any new file shows), except under the relative directories in ``skip``."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if not any(relative == s or relative.startswith(s + "/") for s in skip):
            found[relative] = "directory" if path.is_dir() else hashlib.md5(path.read_bytes()).hexdigest()
    return found


def outputs(root: Path) -> dict[str, str]:
    """md5 of every file under data/, metrics/ and plots/ (temporaries included), but DVC's .gitignore files."""
    found = {}
    for top in OUTPUT_DIRECTORIES:
        if (root / top).is_dir():
            found.update({f"{top}/{name}": md5 for name, md5 in tree(root / top).items()
                          if md5 != "directory" and Path(name).name != ".gitignore"})
    return found


def temporaries(root: Path) -> list[str]:
    """Every atomic-write temporary (file or directory, empty or not) under data/, metrics/ and plots/."""
    return sorted(path.relative_to(root).as_posix() for top in OUTPUT_DIRECTORIES if (root / top).is_dir()
                  for path in (root / top).rglob(".*.tmp"))


def fresh_home(root: Path) -> dict[str, str]:
    """The environment of a test repository whose HOME is a new directory ``root``/home."""
    home = root / "home"
    home.mkdir(parents=True)
    return base_environment(home)
