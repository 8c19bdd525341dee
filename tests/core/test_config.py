"""params.yaml: every bad value is one clear DatasetError that says which key and what to write instead."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.core.config import (
    CardParams,
    ContaminationParams,
    MergeParams,
    NearDuplicateParams,
    Params,
    SourceSpec,
    SplitParams,
    load_params,
    parse_params_text,
    read_params_file,
)
from src.core.errors import DatasetError
from tests.project import PROJECT_ROOT


def shards(*ranges: tuple[int, int]) -> dict:
    len(ranges)
    return {f"shard{k}": {"start": start, "stop": stop} for k, (start, stop) in enumerate(ranges, 1)}


def split(count: object, shard_specs: object, **more: object) -> dict:
    return {"count": count, "shards": shard_specs, **more}


def split_error(value: object) -> str:
    with pytest.raises(DatasetError) as caught:
        SplitParams.parse(value)
    assert "\n" not in str(caught.value)
    return str(caught.value)


FOUR = shards((0, 4), (4, 8), (8, 12), (12, 16))

SPLIT_ERRORS: list[tuple[str, object, str]] = [
    ("count is text", split("4", FOUR), "split.count must be an integer, not '4'"),
    ("count is a float", split(4.0, FOUR), "split.count must be an integer, not 4.0"),
    ("count is a boolean", split(True, shards((0, 1))), "split.count must be an integer, not True"),
    ("count is missing", {"shards": FOUR}, "split.count must be an integer, not None"),
    ("count is a list", split([4], FOUR), "split.count must be an integer, not [4]"),
    ("count is zero", split(0, {}), "split.count must be at least 1, not 0"),
    ("count is negative", split(-4, FOUR), "split.count must be at least 1, not -4"),
    ("count above the names", split(5, FOUR),
     "split.count is 5 but split.shards names 4 shards; make them agree (python3 -m src.reshard N rewrites both)"),
    ("count below the names", split(3, FOUR),
     "split.shards: 'shard4' does not fit split.count 3; name the shards shard1 ... shard3"),
    ("fewer ranges than count", split(4, {k: v for k, v in FOUR.items() if k != "shard3"}),
     "split.count is 4 but split.shards names 3 shards; make them agree (python3 -m src.reshard N rewrites both)"),
    ("shard number above count", split(2, {"shard1": {"start": 0, "stop": 1}, "shard3": {"start": 1, "stop": 2}}),
     "split.shards: 'shard3' does not fit split.count 2; name the shards shard1 ... shard2"),
    ("start equals stop", split(2, shards((0, 5), (5, 5))),
     "split.shards.shard2: start 5 must be below stop 5 (ranges are half-open [start, stop))"),
    ("start above stop", split(2, shards((0, 5), (9, 5))),
     "split.shards.shard2: start 9 must be below stop 5 (ranges are half-open [start, stop))"),
    ("negative start", split(1, shards((-1, 5))), "split.shards.shard1.start must be at least 0, not -1"),
    ("start is text", split(1, {"shard1": {"start": "0", "stop": 5}}),
     "split.shards.shard1.start must be an integer, not '0'"),
    ("stop is a float", split(1, {"shard1": {"start": 0, "stop": 5.5}}),
     "split.shards.shard1.stop must be an integer, not 5.5"),
    ("stop is null", split(1, {"shard1": {"start": 0, "stop": None}}),
     "split.shards.shard1.stop must be an integer, not None"),
    ("stop is missing", split(1, {"shard1": {"start": 0}}),
     "split.shards.shard1: 'stop' is missing; give a shard's stop, or both start and stop"),
    ("start is missing", split(1, {"shard1": {"stop": 3}}),
     "split.shards.shard1: 'start' is missing; give a shard's stop, or both start and stop"),
    ("typo in a range key", split(1, {"shard1": {"start": 0, "sotp": 3}}),
     "split.shards.shard1: unknown key 'sotp'; did you mean 'stop'?"),
    ("range as a list", split(1, {"shard1": [0, 3]}),
     "split.shards.shard1 must be the index where the shard stops (an integer), or {start, stop}, not a list"),
    ("range is empty", split(1, {"shard1": None}),
     "split.shards.shard1 must be the index where the shard stops (an integer), or {start, stop}, not empty"),
    ("stop form: a stop below the previous", split(3, {"shard1": 4, "shard2": 3, "shard3": 9}),
     "split.shards.shard2: stop 3 must be above 4, where the shard before it stops (a shard's value is the index "
     "where it stops)"),
    ("stop form: a stop equal to the previous", split(2, {"shard1": 4, "shard2": 4}),
     "split.shards.shard2: stop 4 must be above 4, where the shard before it stops (a shard's value is the index "
     "where it stops)"),
    ("stop form: zero", split(1, {"shard1": 0}), "split.shards.shard1 must be at least 1, not 0"),
    ("stop form: text", split(1, {"shard1": "4000"}), "split.shards.shard1 must be an integer, not '4000'"),
    ("stop form: a float", split(1, {"shard1": 4000.0}), "split.shards.shard1 must be an integer, not 4000.0"),
    ("stop form: a boolean", split(1, {"shard1": True}), "split.shards.shard1 must be an integer, not True"),
    ("stop form after a gap-leaving range", split(2, {"shard1": {"start": 0, "stop": 5}, "shard2": 3}),
     "split.shards.shard2: stop 3 must be above 5, where the shard before it stops (a shard's value is the index "
     "where it stops)"),
    ("shards as a list", split(1, [{"start": 0, "stop": 1}]),
     "split.shards must be a mapping of names to values, not a list"),
    ("shards empty", {"count": 1, "shards": None}, "split.shards is missing or empty; it must be a mapping of names to values"),
    ("overlap", split(2, shards((0, 5), (4, 8))),
     "split.shards: 'shard2' [4, 8) overlaps 'shard1' [0, 5) on records 4..4; start 'shard2' at 5 or later"),
    ("overlap inside", split(3, shards((0, 10), (2, 4), (10, 12))),
     "split.shards: 'shard2' [2, 4) overlaps 'shard1' [0, 10) on records 2..3; start 'shard2' at 10 or later"),
    ("ranges out of order", split(2, shards((5, 10), (0, 5))),
     "split.shards: records 0..4 are in no shard (gap before the first shard, before 'shard1'); "
     "start 'shard1' at 0 or set split.allow_gaps: true"),
    ("ranges out of order with gaps allowed", split(2, shards((5, 10), (0, 5)), allow_gaps=True),
     "split.shards: 'shard2' [0, 5) overlaps 'shard1' [5, 10) on records 0..4; start 'shard2' at 10 or later"),
    ("gap between shards", split(2, shards((0, 5), (6, 8))),
     "split.shards: records 5..5 are in no shard (gap after 'shard1', before 'shard2'); "
     "start 'shard2' at 5 or set split.allow_gaps: true"),
    ("gap at the start", split(2, shards((3, 5), (5, 8))),
     "split.shards: records 0..2 are in no shard (gap before the first shard, before 'shard1'); "
     "start 'shard1' at 0 or set split.allow_gaps: true"),
    ("allow_gaps is text", split(1, shards((0, 1)), allow_gaps="yes"), "split.allow_gaps must be true or false, not 'yes'"),
    ("typo in a split key", split(1, shards((0, 1)), allow_gap=True),
     "split: unknown key 'allow_gap'; did you mean 'allow_gaps'?"),
    ("typo far from any key", split(1, shards((0, 1)), size=3), "split: unknown key 'size'; known keys: count, shards, allow_gaps, strategy, seed"),
    ("split as a list", [1, 2], "split must be a mapping of names to values, not a list"),
    ("integer shard name", split(1, {1: {"start": 0, "stop": 1}}), "split.shards: key 1 must be a string; quote it in params.yaml"),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in SPLIT_ERRORS], ids=[c[0] for c in SPLIT_ERRORS])
def test_invalid_shardings_are_refused_with_what_to_fix(value: object, expected: str) -> None:
    assert split_error(value) == expected


BAD_SHARD_NAMES = ["../x", "../../etc/passwd", "/tmp/x", "/shard1", "a/shard1", "shard1/..", "shard1\\x", "..",
                   "$(touch x)", "`touch x`", "; rm -rf x", "shard1; rm -rf x", "shard1 && touch x", "shard1|id",
                   "shard1\n", " shard1", "shard1 ", "shard1\x00", "shard0", "shard01", "shard１", "Shard1",
                   "1_of_1", "shard-1", "shard", "", "shard1.jsonl", "${key}", "shard1'"]


@pytest.mark.parametrize("name", BAD_SHARD_NAMES)
def test_shard_names_that_could_leave_data_shards_or_reach_a_shell_are_refused(name: str) -> None:
    expected = f"split.shards: {name!r} is not a shard key; name the shards shard1 ... shard1"
    assert split_error(split(1, {name: {"start": 0, "stop": 1}})) == expected


def test_valid_shardings_parse_in_number_order_whatever_the_key_order() -> None:
    value = split(3, {"shard3": {"start": 6, "stop": 9}, "shard1": {"start": 0, "stop": 3},
                      "shard2": {"start": 3, "stop": 6}})
    parsed = SplitParams.parse(value)
    assert [(s.key, s.name, s.start, s.stop) for s in parsed.shards] == [
        ("shard1", "1_of_3", 0, 3), ("shard2", "2_of_3", 3, 6), ("shard3", "3_of_3", 6, 9)]
    assert len(parsed.shards[1]) == 3


def test_without_shards_the_count_cuts_the_merged_records_evenly() -> None:
    even = SplitParams.parse({"count": 3})
    assert [(s.key, s.name, s.start, s.stop) for s in even.for_records(10).shards] == [
        ("shard1", "1_of_3", 0, 4), ("shard2", "2_of_3", 4, 7), ("shard3", "3_of_3", 7, 10)]
    with pytest.raises(DatasetError) as caught:
        even.for_records(2)
    assert str(caught.value) == "split.count 3 is more than the 2 merged records; choose at most 2 shards"
    explicit = SplitParams.parse(split(1, {"shard1": 5}))
    assert explicit.for_records(5) is explicit


def test_a_shard_given_as_its_stop_starts_where_the_shard_before_it_stops() -> None:
    parsed = SplitParams.parse(split(4, {"shard2": 8000, "shard1": 4000, "shard4": 16000, "shard3": 12000}))
    assert [(s.key, s.start, s.stop) for s in parsed.shards] == [
        ("shard1", 0, 4000), ("shard2", 4000, 8000), ("shard3", 8000, 12000), ("shard4", 12000, 16000)]
    mixed = SplitParams.parse(split(3, {"shard1": 5, "shard2": {"start": 7, "stop": 9}, "shard3": 12},
                                    allow_gaps=True))
    assert [(s.start, s.stop) for s in mixed.shards] == [(0, 5), (7, 9), (9, 12)]


def test_gaps_are_allowed_only_when_asked_for() -> None:
    parsed = SplitParams.parse(split(2, shards((2, 5), (7, 9)), allow_gaps=True))
    assert [(s.start, s.stop) for s in parsed.shards] == [(2, 5), (7, 9)]
    parsed.check_records(9)
    parsed.check_records(20)  # records after the last shard are fine too


@pytest.mark.parametrize(("records", "expected"), [
    (15999, "split.shards.shard4: stop 16000 is past the end of the merged data (15999 records); set it to at most "
            "15999 (python3 -m src.reshard 4 does)"),
    (1, "split.shards.shard4: stop 16000 is past the end of the merged data (1 records); set it to at most 1 "
        "(python3 -m src.reshard 4 does)"),
    (16001, "split.shards: records 16000..16000 are in no shard (after 'shard4'); set its stop to 16001 "
            "(python3 -m src.reshard 4 does) or set split.allow_gaps: true"),
    (20000, "split.shards: records 16000..19999 are in no shard (after 'shard4'); set its stop to 20000 "
            "(python3 -m src.reshard 4 does) or set split.allow_gaps: true"),
])
def test_ranges_are_checked_against_the_merged_record_count(records: int, expected: str) -> None:
    parsed = SplitParams.parse(split(4, shards((0, 4000), (4000, 8000), (8000, 12000), (12000, 16000))))
    parsed.check_records(16000)
    with pytest.raises(DatasetError) as caught:
        parsed.check_records(records)
    assert str(caught.value) == expected


# --- the document: sections, typos of section names, YAML that is unsafe or unreadable ---

SECTIONS_OK = "raw:\n  sources:\n    s:\n      sample: {records: 3, seed: 1}\nmerge:\n  drop_duplicates: false\n" \
              "split:\n  count: 1\n  shards:\n    shard1: 3\ncard:\n  pretty_name: t\n"

DOCUMENT_ERRORS = [
    ("typo splt", SECTIONS_OK.replace("split:", "splt:"), "params.yaml: unknown top-level key 'splt'; did you mean 'split'?"),
    ("typo Split", SECTIONS_OK + "Split: {}\n", "params.yaml: unknown top-level key 'Split'; did you mean 'split'?"),
    ("typo mrege", SECTIONS_OK.replace("merge:", "mrege:"), "params.yaml: unknown top-level key 'mrege'; did you mean 'merge'?"),
    ("typo raws", SECTIONS_OK.replace("raw:", "raws:"), "params.yaml: unknown top-level key 'raws'; did you mean 'raw'?"),
    ("missing split", SECTIONS_OK.split("split:")[0], "params.yaml: section 'split' is missing"),
    ("empty file", "", "params.yaml is missing or empty; it must be a mapping of names to values"),
    ("a list", "- raw\n- split\n", "params.yaml must be a mapping of names to values, not a list"),
    ("bad indentation", SECTIONS_OK.replace("  count: 1", " count: 1"),
     "params.yaml:9: not valid YAML (mapping values are not allowed here)"),
    ("a tab", SECTIONS_OK.replace("  count: 1", "\tcount: 1"),
     "params.yaml:8: not valid YAML (found character '\\t' that cannot start any token)"),
    ("unclosed bracket", SECTIONS_OK.replace("shard1: 3", "shard1: {start: 0, stop: 3"),
     "params.yaml:11: not valid YAML (expected ',' or '}', but got ':')"),
    ("python object tag", SECTIONS_OK.replace("count: 1", "count: !!python/object/apply:os.system ['touch pwned']"),
     "params.yaml:8: not valid YAML (could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system')"),
    ("python name tag", SECTIONS_OK.replace("count: 1", "count: !!python/name:os.system"),
     "params.yaml:8: not valid YAML (could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/name:os.system')"),
    ("impossible date", SECTIONS_OK.replace("count: 1", "count: 2024-13-01"),
     "params.yaml: not valid YAML (month must be in 1..12); quote a value that is meant as text"),
    ("bad int tag", SECTIONS_OK.replace("count: 1", "count: !!int one"),
     "params.yaml: not valid YAML (invalid literal for int() with base 10: 'one'); quote a value that is meant as text"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in DOCUMENT_ERRORS], ids=[c[0] for c in DOCUMENT_ERRORS])
def test_bad_params_documents_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                          expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_params(Path("params.yaml"))
    assert str(caught.value) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing was executed


def test_keys_that_are_not_typos_of_sections_are_left_for_other_tools(tmp_path: Path) -> None:
    document = parse_params_text(SECTIONS_OK + "notes:\n  owner: data team\n", Path("params.yaml"))
    assert document["notes"] == {"owner": "data team"}


def test_a_missing_or_unreadable_params_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        read_params_file(tmp_path / "params.yaml")
    assert str(caught.value) == f"{tmp_path / 'params.yaml'}: params file not found"
    (tmp_path / "latin1.yaml").write_bytes(SECTIONS_OK.replace("s:", "s\xe9:").encode("latin-1"))
    with pytest.raises(DatasetError) as caught:
        read_params_file(tmp_path / "latin1.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'latin1.yaml'}: cannot read ('utf-8' codec can't decode byte 0xe9")


def test_the_project_params_are_valid() -> None:
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.split.count == len(params.split.shards)
    params.split.check_records(params.split.shards[-1].stop)


# --- near-duplicates and contamination ---

CHECK_ERRORS = [
    ("bands do not divide", NearDuplicateParams.parse, {"ngram": 5, "permutations": 128, "bands": 24, "threshold": 0.8},
     "near_duplicates.bands (24) must divide near_duplicates.permutations (128); each band takes permutations / "
     "bands of them"),
    ("threshold above 1", NearDuplicateParams.parse, {"threshold": 1.5},
     "near_duplicates.threshold must be a number above 0 and at most 1, not 1.5"),
    ("threshold zero", NearDuplicateParams.parse, {"threshold": 0},
     "near_duplicates.threshold must be a number above 0 and at most 1, not 0"),
    ("threshold text", NearDuplicateParams.parse, {"threshold": "0.8"},
     "near_duplicates.threshold must be a number above 0 and at most 1, not '0.8'"),
    ("ngram zero", NearDuplicateParams.parse, {"ngram": 0}, "near_duplicates.ngram must be at least 1, not 0"),
    ("typo", NearDuplicateParams.parse, {"treshold": 0.8},
     "near_duplicates: unknown key 'treshold'; did you mean 'threshold'?"),
    ("eval as a list", ContaminationParams.parse, {"eval": ["a.json"]},
     "contamination.eval must be a mapping of names to values, not a list"),
    ("eval name with a slash", ContaminationParams.parse, {"eval": {"a/b": "a.json"}},
     "contamination.eval: name 'a/b' must be letters, digits, '_' or '-'"),
    ("eval path empty", ContaminationParams.parse, {"eval": {"quiz": ""}},
     "contamination.eval.quiz must be a non-empty string, not ''"),
    ("merge drop text", MergeParams.parse, {"drop_near_duplicates": "yes"},
     "merge.drop_near_duplicates must be true or false, not 'yes'"),
]


@pytest.mark.parametrize("parse, value, expected", [case[1:] for case in CHECK_ERRORS],
                         ids=[case[0] for case in CHECK_ERRORS])
def test_near_duplicate_and_contamination_params_are_checked(parse, value: dict, expected: str) -> None:
    with pytest.raises(DatasetError) as error:
        parse(value)
    assert str(error.value) == expected


def test_near_duplicate_and_contamination_sections_have_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(SECTIONS_OK)
    params = load_params(path)
    assert params.near_duplicates == NearDuplicateParams(5, 128, 16, 0.8) and params.near_duplicates.rows == 8
    assert params.contamination == ContaminationParams(13, ())
    path.write_text(SECTIONS_OK + "contamination: {ngram: 20, eval: {quiz: q.json}}\n")
    assert load_params(path).contamination == ContaminationParams(20, (("quiz", "q.json"),))


# --- sources ---

SOURCE_ERRORS = [
    ("path and url", "s", {"path": "a.json", "url": "http://x/a.json", "sha256": "0" * 64},
     "raw.sources.s: give exactly one of path, url or sample (found: path, url)"),
    ("nothing", "s", {"fields": {}}, "raw.sources.s: give exactly one of path, url or sample (found: none)"),
    ("url without checksum", "s", {"url": "http://x/a.json"},
     "raw.sources.s: a url source needs exactly one checksum, md5 or sha256, to pin its bytes"),
    ("url with two checksums", "s", {"url": "http://x/a.json", "md5": "0" * 32, "sha256": "0" * 64},
     "raw.sources.s: a url source needs exactly one checksum, md5 or sha256, to pin its bytes"),
    ("checksum on a path", "s", {"path": "a.json", "md5": "0" * 32}, "raw.sources.s: md5 pins a download; only url sources take it"),
    ("short sha256", "s", {"url": "http://x/a.json", "sha256": "0" * 63}, "raw.sources.s.sha256 must be 64 lowercase hex digits"),
    ("upper-case md5", "s", {"url": "http://x/a.json", "md5": "A" * 32}, "raw.sources.s.md5 must be 32 lowercase hex digits"),
    ("empty path", "s", {"path": ""}, "raw.sources.s.path must be a non-empty string, not ''"),
    ("path is a number", "s", {"path": 7}, "raw.sources.s.path must be a non-empty string, not 7"),
    ("typo pth", "s", {"pth": "a.json"}, "raw.sources.s: unknown key 'pth'; did you mean 'path'?"),
    ("zero sample records", "s", {"sample": {"records": 0}}, "raw.sources.s.sample.records must be at least 1, not 0"),
    ("negative seed", "s", {"sample": {"records": 3, "seed": -1}}, "raw.sources.s.sample.seed must be at least 0, not -1"),
    ("rename to a non-field", "s", {"path": "a.json", "fields": {"context": "contexts"}},
     "raw.sources.s.fields.context: 'contexts' is not a record field; use one of index, instruction, input, output, category"),
    ("two renames to one field", "s", {"path": "a.json", "fields": {"context": "input", "passage": "input"}},
     "raw.sources.s.fields: two source fields are renamed to 'input'"),
    ("number_records is text", "s", {"path": "a.json", "number_records": "yes"},
     "raw.sources.s.number_records must be true or false, not 'yes'"),
    *[(f"source name {name!r}", name, {"path": "a.json"},
       f"raw.sources: source name '{name}' must use only letters, digits, '_' and '-' (it names a file under data/raw/)")
      for name in ["../evil", "a/b", ".hidden", "$(touch x)", "a b", "-a", "sources.json"]],
]


@pytest.mark.parametrize(("name", "value", "expected"), [c[1:] for c in SOURCE_ERRORS], ids=[c[0] for c in SOURCE_ERRORS])
def test_bad_sources_are_refused(name: str, value: dict, expected: str) -> None:
    with pytest.raises(DatasetError) as caught:
        SourceSpec.parse(name, value)
    assert str(caught.value) == expected


# --- several problems in one section: the first one in the order the checks run is the one named ---

ORDER_ERRORS = [
    ("split: keys before values", SplitParams.parse,
     {"count": "4", "seed": -1, "strategy": "random", "allow_gaps": "no", "shards": [], "sise": 1},
     "split: unknown key 'sise'; known keys: count, shards, allow_gaps, strategy, seed"),
    ("split: strategy first", SplitParams.parse, {"count": "4", "seed": -1, "strategy": "random", "allow_gaps": "no"},
     "split.strategy must be one of contiguous, stratified, shuffle, not 'random'"),
    ("split: then seed", SplitParams.parse, {"count": "4", "seed": -1, "allow_gaps": "no", "shards": []},
     "split.seed must be at least 0, not -1"),
    ("split: then count", SplitParams.parse, {"count": "4", "allow_gaps": "no", "shards": []},
     "split.count must be an integer, not '4'"),
    ("split: then allow_gaps, before the shards", SplitParams.parse, {"count": 1, "allow_gaps": "no", "shards": []},
     "split.allow_gaps must be true or false, not 'no'"),
    ("split: every shard key before any range", SplitParams.parse,
     {"count": 2, "shards": {"shard2": {"start": 5, "stop": 5}, "shard9": 1}},
     "split.shards: 'shard9' does not fit split.count 2; name the shards shard1 ... shard2"),
    ("split: ranges in shard number order, not key order", SplitParams.parse,
     {"count": 3, "shards": {"shard3": {"start": 9, "stop": 9}, "shard2": {"start": 5, "stop": 4}, "shard1": 0}},
     "split.shards.shard1 must be at least 1, not 0"),
    ("split: the count before overlaps", SplitParams.parse,
     {"count": 3, "shards": {"shard1": {"start": 0, "stop": 5}, "shard2": {"start": 3, "stop": 9}}},
     "split.count is 3 but split.shards names 2 shards; make them agree (python3 -m src.reshard N rewrites both)"),
    ("source: keys before the origin", lambda v: SourceSpec.parse("s", v), {"path": "", "url": "u", "lisence": "x"},
     "raw.sources.s: unknown key 'lisence'; known keys: path, url, md5, sha256, sample, fields, number_records, "
     "license"),
    ("source: the digest before the url", lambda v: SourceSpec.parse("s", v),
     {"url": 7, "sha256": "x", "fields": [], "license": "Bad", "number_records": "yes"},
     "raw.sources.s.sha256 must be 64 lowercase hex digits"),
    ("source: the origin before fields", lambda v: SourceSpec.parse("s", v),
     {"url": 7, "sha256": "0" * 64, "fields": [], "license": "Bad", "number_records": "yes"},
     "raw.sources.s.url must be a non-empty string, not 7"),
    ("source: fields before license", lambda v: SourceSpec.parse("s", v),
     {"path": "a.json", "fields": [], "license": "Bad", "number_records": "yes"},
     "raw.sources.s.fields must be a mapping of names to values, not a list"),
    ("source: license before number_records", lambda v: SourceSpec.parse("s", v),
     {"path": "a.json", "license": "Bad", "number_records": "yes"},
     "raw.sources.s.license must be a license identifier as the Hugging Face Hub writes them (like 'cc-by-sa-3.0' "
     "or 'apache-2.0'), not 'Bad'"),
    ("source: sample records before seed", lambda v: SourceSpec.parse("s", v), {"sample": {"seed": -1}},
     "raw.sources.s.sample.records must be an integer, not None"),
    ("contamination: eval before ngram", ContaminationParams.parse, {"ngram": 0, "eval": {"a/b": ""}},
     "contamination.eval: name 'a/b' must be letters, digits, '_' or '-'"),
    ("near_duplicates: in table order, whatever the key order", NearDuplicateParams.parse,
     {"threshold": 2, "bands": 0, "ngram": "5"}, "near_duplicates.ngram must be an integer, not '5'"),
    ("near_duplicates: each value before bands divide permutations", NearDuplicateParams.parse,
     {"threshold": 2, "bands": 3}, "near_duplicates.threshold must be a number above 0 and at most 1, not 2"),
    ("card: pretty_name before license", CardParams.parse, {"license": "Bad"},
     "card.pretty_name must be a non-empty string, not None"),
    ("merge: in table order, whatever the key order", MergeParams.parse,
     {"drop_near_duplicates": 1, "drop_duplicates": 0}, "merge.drop_duplicates must be true or false, not 0"),
]


@pytest.mark.parametrize("parse, value, expected", [case[1:] for case in ORDER_ERRORS],
                         ids=[case[0] for case in ORDER_ERRORS])
def test_the_first_problem_in_check_order_is_named(parse, value: dict, expected: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse(value)
    assert str(caught.value) == expected


# --- `python3 -m src.params PARAMS`: the check a stage can run before any shell sees a name from params ---

def run_params_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "src.params", str(path)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)


def test_params_check_is_silent_on_valid_params() -> None:
    result = run_params_check(PROJECT_ROOT / "params.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_params_check_refuses_a_shell_shard_name_in_one_line(tmp_path: Path) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    document["split"]["shards"]["$(touch pwned)"] = document["split"]["shards"].pop("shard4")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = run_params_check(path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("error: split.shards: '$(touch pwned)' is not a shard key; name the shards shard1 ... "
                             "shard4\n")


# --- nothing from params or data is evaluated or handed to a shell ---

def test_src_never_evaluates_unpickles_or_shells_out() -> None:
    """An AST scan of src/: yaml.safe_load only; no eval/exec/compile/__import__, pickle/marshal/shelve,
    os.system/os.popen/os.exec*/os.spawn*, subprocess, or shell=True anywhere."""
    import ast

    forbidden_calls = {"eval", "exec", "compile", "__import__", "input"}
    forbidden_modules = {"pickle", "marshal", "shelve", "subprocess", "pty", "commands"}
    forbidden_attributes = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "load_all"),
                            ("yaml", "unsafe_load_all"), ("yaml", "full_load_all"), ("os", "system"),
                            ("os", "popen"), ("yaml", "Loader"), ("yaml", "UnsafeLoader"), ("yaml", "FullLoader")}
    problems = []
    sources = sorted((PROJECT_ROOT / "src").rglob("*.py"))
    assert len(sources) >= 10
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in forbidden_calls:
                problems.append(f"{where}: {node.func.id}()")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                pair = (node.value.id, node.attr)
                if pair in forbidden_attributes or (node.value.id == "os" and node.attr.startswith(("exec", "spawn"))):
                    problems.append(f"{where}: {node.value.id}.{node.attr}")
            if isinstance(node, ast.keyword) and node.arg == "shell":
                problems.append(f"{where}: shell=")
            if isinstance(node, ast.Import):
                problems += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in forbidden_modules]
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in forbidden_modules:
                problems.append(f"{where}: from {node.module} import")
    assert problems == []
    text = "\n".join(path.read_text(encoding="utf-8") for path in sources)
    assert "yaml.safe_load(" in text and "yaml.load(" not in text and "shell=True" not in text
