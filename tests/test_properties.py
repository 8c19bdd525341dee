"""Property-based tests (hypothesis): merging and sharding lose, duplicate and alter nothing, and bad
shardings, params or bytes only ever end in a clean DatasetError.

Bounded and derandomized: the same examples on every run and machine, so a failure reproduces.
"""
from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.core.config import MergeParams, RawParams, SplitParams, even_ranges, parse_params_text
from src.core.errors import DatasetError
from src.core.schema import CATEGORIES
from src.core.scratch import scratch_database
from src.records.index import RecordIndex, record_digests
from src.records.lines import raw_record_line
from src.records.merging import merge_sources
from src.sharding.writer import ShardFiles, laid_out, shard_pieces
from src.sources import readers as records_module
from src.sources.readers import iter_source_file, iter_validated
from tests.records_data import write_merged_records, write_raw

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
FEW = settings(max_examples=60, deadline=None, derandomize=True, database=None)

AWKWARD = ["\u2028", "\u2029", '"', "\\", '\\"', "\x00", "\x01", "\x1f", "\x7f", "\n", "\r", "\r\n", "\t", "\x0b",
           "\x85", "\ufeff", "😀", "🗻", "👩‍👩‍👧", "日本語", "ｶﾀｶﾅ", "é", "e\u0301", "\u3000", "/", "</script>", "\\u0000",
           "\U0010ffff", "\ud7ff", "\ue000", "{", "}", "[", "]", ",", ":"]
# Any Unicode scalar value (never a lone surrogate: records with those are refused before merging).
CHARACTERS = st.characters(codec="utf-8")
TEXT = st.lists(st.one_of(st.text(CHARACTERS, max_size=6), st.sampled_from(AWKWARD)), max_size=6).map("".join)
NON_BLANK = st.tuples(TEXT, st.sampled_from(["a", "答", "😀", "\\", '"', "\u2028x"]), TEXT).map("".join)


def record(index: str, instruction: str, input_: str, output: str, category: str) -> dict:
    return {"index": index, "instruction": instruction, "input": input_, "output": output, "category": category}


RECORDS = st.builds(record, index=st.integers(0, 10**6).map(str), instruction=NON_BLANK, input_=TEXT,
                    output=NON_BLANK, category=st.sampled_from(CATEGORIES))
# Exact duplicates across and within sources, as in real data: some records are copies of earlier ones.
SOURCE = st.lists(RECORDS, min_size=1, max_size=12, unique_by=lambda r: r["index"])
SOURCES = st.lists(st.tuples(st.text("abcdefgh_-", min_size=1, max_size=5), SOURCE), min_size=1, max_size=3,
                   unique_by=lambda pair: pair[0])


def with_copies(sources: list, copies: list[tuple[int, int]]) -> list:
    """Append to some sources an exact copy (new index) of an earlier record, so duplicates occur often."""
    flat = [r for _, records in sources for r in records]
    result = [(name, list(records)) for name, records in sources]
    for target, picked in copies:
        _name, records = result[target % len(result)]
        copy = {**flat[picked % len(flat)], "index": f"copy-{len(records)}"}
        records.append(copy)
    return result


def projection(record: dict) -> bytes:
    """The published line, computed independently of src/."""
    fields = {"instruction": record["instruction"], "input": record["input"], "output": record["output"]}
    return (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")


def sharding(ranges: list[tuple[int, int]], order: list[int], allow_gaps: bool = False,
             stop_form: bool = False) -> dict:
    """The split section for ``ranges``, keys written in ``order``: each shard as {start, stop}, or (contiguous
    ranges only) as its stop."""
    shards = {f"shard{k + 1}": ranges[k][1] if stop_form else {"start": ranges[k][0], "stop": ranges[k][1]}
              for k in order}
    return {"count": len(ranges), "shards": shards, "allow_gaps": allow_gaps}


@pytest.fixture(scope="module", autouse=True)
def without_fsync():
    """These properties are about bytes, not durability (tests/output/test_files.py and tests/e2e/test_interruptions.py
    check that): fsync and fdatasync, which every output file ends with, are skipped, or they would take most of the
    time of thousands of examples."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        patch.setattr(os, "fdatasync", lambda fd: None)
        yield


def contiguous_ranges(data: st.DataObject, records: int) -> list[tuple[int, int]]:
    count = data.draw(st.integers(1, min(records, 12)), label="count")
    cuts = sorted(data.draw(st.lists(st.integers(1, records - 1), min_size=count - 1, max_size=count - 1,
                                     unique=True), label="cuts")) if count > 1 else []
    bounds = [0, *cuts, records]
    return list(itertools.pairwise(bounds))


def write_shards(merged: list[dict], split: SplitParams) -> list[bytes]:
    """The shards the split stage writes from these merged records (the merged file and record index written as
    the merge stage writes them)."""
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        write_merged_records(work, merged)
        paths = [work / f"x-{shard.name}.jsonl" for shard in split.shards]
        with RecordIndex(work / "records.npy") as index, ShardFiles(paths) as files:
            for piece in shard_pieces(laid_out(work / "merged.jsonl", index, split), split):
                files.write(piece.shard, piece.lines)
            files.md5s()
        return [path.read_bytes() for path in paths]


@SETTINGS
@given(sources=SOURCES, copies=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 99)), max_size=4),
       drop_duplicates=st.booleans(), data=st.data())
def test_every_merged_record_lands_in_exactly_one_shard_in_order(sources, copies, drop_duplicates, data) -> None:
    sources = with_copies(sources, copies)
    with tempfile.TemporaryDirectory() as directory, scratch_database() as database:
        merged_file = Path(directory) / "merged.jsonl"
        counts = merge_sources(database, write_raw(Path(directory) / "raw", [source for source in sources if source[1]]),
                               merged_file, Path(directory) / "records.npy", drop_duplicates, None).counts
        merged = [json.loads(line) for line in merged_file.read_bytes().splitlines()]
    assert all(m["chars"] == [len(m["instruction"]), len(m["input"]), len(m["output"])] for m in merged)

    # The merge keeps every record (or the first of each exact duplicate), in source order, renumbered.
    inputs = [(name, r) for name, records in sources for r in records]
    seen, kept = set(), []
    for name, r in inputs:
        key = (r["instruction"], r["input"], r["output"])
        if not (drop_duplicates and key in seen):
            kept.append((name, r))
        seen.add(key)
    assert counts.exact == len(inputs) - len(seen)
    assert counts.dropped == (counts.exact if drop_duplicates else 0)
    assert [(m["source"], m["source_index"], m["instruction"], m["input"], m["output"], m["category"])
            for m in merged] == [(name, r["index"], r["instruction"], r["input"], r["output"], r["category"])
                                 for name, r in kept]
    assert [m["index"] for m in merged] == [str(n) for n in range(len(merged))]

    ranges = contiguous_ranges(data, len(merged))
    order = data.draw(st.permutations(range(len(ranges))), label="key order in params.yaml")
    split = SplitParams.parse(sharding(ranges, order, stop_form=data.draw(st.booleans(), label="stop form")))
    split.check_records(len(merged))
    shards = write_shards(merged, split)

    assert b"".join(shards) == b"".join(projection(m) for m in merged)
    landed: Counter[str] = Counter()
    for shard, body, (start, stop) in zip(split.shards, shards, ranges, strict=False):
        assert (shard.start, shard.stop) == (start, stop)
        lines = body.split(b"\n")
        assert lines.pop() == b""  # every line ends in \n, and \n only ends lines
        assert len(lines) == stop - start
        for offset, line in enumerate(lines):
            merged_record = merged[start + offset]
            assert json.loads(line) == {k: merged_record[k] for k in ("instruction", "input", "output")}
            assert line + b"\n" == projection(merged_record)
            landed[merged_record["index"]] += 1
    assert landed == Counter(m["index"] for m in merged)


@SETTINGS
@given(records=st.integers(1, 400), data=st.data())
def test_shards_with_allowed_gaps_hold_each_covered_record_once(records: int, data) -> None:
    points = sorted(data.draw(st.lists(st.integers(0, records), min_size=2, max_size=16, unique=True)))
    pairs = [(a, b) for a, b in zip(points[::2], points[1::2], strict=False)]
    split = SplitParams.parse(sharding(pairs, list(range(len(pairs))), allow_gaps=True))
    split.check_records(records)
    merged = [{"index": str(n), "instruction": f"i{n}", "input": "", "output": f"o{n}", "category": "open_qa"}
              for n in range(records)]
    covered = Counter(json.loads(line)["instruction"] for body in write_shards(merged, split)
                      for line in body.splitlines())
    assert covered == Counter(f"i{n}" for a, b in pairs for n in range(a, b))
    assert max(covered.values()) == 1


@SETTINGS
@given(records=st.integers(1, 100_000), count=st.integers(1, 64))
def test_even_ranges_are_a_valid_contiguous_sharding_with_sizes_within_one(records: int, count: int) -> None:
    if count > records:
        with pytest.raises(DatasetError):
            even_ranges(records, count)
        return
    ranges = even_ranges(records, count)
    sizes = [stop - start for start, stop in ranges]
    assert ranges[0][0] == 0 and ranges[-1][1] == records
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    SplitParams.parse(sharding(ranges, list(range(count)))).check_records(records)


# --- invalid shardings: always a DatasetError, one line, never another exception ---

MUTATIONS = ["overlap", "gap", "empty range", "reversed range", "count too high", "count too low", "drop a shard",
             "past the end", "short of the end", "bad name", "negative start", "non-integer bound"]


@SETTINGS
@given(records=st.integers(2, 500), mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_each_kind_of_broken_sharding_is_a_clean_error(records: int, mutation: str, data) -> None:
    ranges = contiguous_ranges(data, records)
    value = sharding(ranges, list(range(len(ranges))))
    shards = list(value["shards"].values())
    k = data.draw(st.integers(0, len(shards) - 1), label="shard")
    delta = data.draw(st.integers(1, 50), label="delta")
    end = records
    if mutation == "overlap":
        if k == 0:
            k = 1 if len(shards) > 1 else data.draw(st.nothing())
        shards[k]["start"] = max(shards[k - 1]["start"], shards[k]["start"] - delta)
    elif mutation == "gap":
        shards[k]["start"] += min(delta, shards[k]["stop"] - shards[k]["start"] - 1) or data.draw(st.nothing())
    elif mutation == "empty range":
        shards[k]["stop"] = shards[k]["start"]
    elif mutation == "reversed range":
        shards[k]["start"], shards[k]["stop"] = shards[k]["stop"], shards[k]["start"]
    elif mutation == "count too high":
        value["count"] += delta
    elif mutation == "count too low":
        value["count"] = max(value["count"] - delta, 1) if value["count"] > 1 else 0
    elif mutation == "drop a shard":
        del value["shards"][list(value["shards"])[k]]
    elif mutation == "past the end":
        end = records - delta
    elif mutation == "short of the end":
        end = records + delta
    elif mutation == "bad name":
        name = list(value["shards"])[k]
        new = data.draw(st.text(min_size=0, max_size=12).filter(lambda s: s not in value["shards"]))
        value["shards"] = {(new if key == name else key): spec for key, spec in value["shards"].items()}
        if new == f"shard{k + 1}":
            data.draw(st.nothing())
    elif mutation == "negative start":
        shards[k]["start"] = -delta
    elif mutation == "non-integer bound":
        shards[k][data.draw(st.sampled_from(["start", "stop"]))] = data.draw(
            st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=3), st.lists(st.integers(), max_size=2)))
    with pytest.raises(DatasetError) as caught:
        SplitParams.parse(value).check_records(end)
    assert "\n" not in str(caught.value)


JUNK = st.recursive(st.none() | st.booleans() | st.integers(-3, 40) | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
NAMES = st.one_of(st.builds("shard{}".format, st.integers(-1, 5)), st.text(max_size=8), st.integers(-2, 5),
                  st.none())
BOUND = st.one_of(st.integers(-3, 40), JUNK)
RANGE = st.one_of(BOUND, st.fixed_dictionaries({"start": BOUND, "stop": BOUND}), JUNK,
                  st.dictionaries(st.sampled_from(["start", "stop", "sotp", "end"]), BOUND, max_size=3))
SPLITS = st.one_of(
    JUNK,
    st.fixed_dictionaries({"count": BOUND, "shards": st.one_of(st.dictionaries(NAMES, RANGE, max_size=5), JUNK)},
                          optional={"allow_gaps": st.one_of(st.booleans(), JUNK), "alow_gaps": JUNK}),
)


@SETTINGS
@given(value=SPLITS, records=st.integers(-1, 60))
def test_any_split_value_is_accepted_as_a_valid_sharding_or_refused_cleanly(value, records: int) -> None:
    try:
        split = SplitParams.parse(value)
    except DatasetError:
        return
    # Whatever was accepted really is a valid sharding.
    assert [s.key for s in split.shards] == [f"shard{k}" for k in range(1, split.count + 1)]
    assert all(0 <= s.start < s.stop for s in split.shards)
    assert all(a.stop <= b.start for a, b in zip(split.shards, split.shards[1:], strict=False))
    try:
        split.check_records(records)
    except DatasetError:
        return
    assert split.shards[-1].stop <= records


YAML_PIECES = ["raw:", "merge:", "split:", "splt:", "  count: 4", "  count: 0", "  count: '4'", "  count: 2024-13-01",
               "  shards:", "    shard1: 3", "    shard1: {start: 0, stop: 3}", "    ../x: {start: 0, stop: 1}", "  sources:",
               "    s: {sample: {records: 3}}", "    s: {path: a.json, url: x}", "  drop_duplicates: maybe",
               "\t", "- x", "[", "{", "}", "!!python/object/apply:os.system ['true']", "!!int x", "&a [*a]", "*b",
               "? [a]", ": b", "%YAML 1.1", "---", "...", "'", '"', "#", "x: !!binary AAA", "  allow_gaps: yes",
               "k: " + "[" * 40, "\ufeff", "\x00", "\x85"]


def load_params_text(text: str) -> None:
    document = parse_params_text(text, Path("params.yaml"))
    RawParams.parse(document["raw"])
    MergeParams.parse(document["merge"])
    SplitParams.parse(document["split"])


@SETTINGS
@given(lines=st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=12)), max_size=12))
def test_any_params_text_loads_or_is_refused_cleanly(lines: list[str]) -> None:
    with contextlib.suppress(DatasetError):
        load_params_text("\n".join(lines))


# --- sources: random records written either way read back exactly; random bytes are refused cleanly ---

def source_bytes(values: list[dict], kind: str, bom: bool, crlf: bool, indent: int | None, ensure_ascii: bool) -> bytes:
    """``ensure_ascii`` writes every non-ASCII character as a \\u escape (astral ones as surrogate pairs)."""
    if kind == "array":
        text = json.dumps(values, ensure_ascii=ensure_ascii, indent=indent)
    else:
        text = "".join(json.dumps(v, ensure_ascii=ensure_ascii) + "\n" for v in values)
    data = text.encode("utf-8")
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    return (codecs.BOM_UTF8 if bom else b"") + data


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@FEW
@given(values=SOURCE, kind=st.sampled_from(["array", "jsonl"]), bom=st.booleans(), crlf=st.booleans(),
       indent=st.sampled_from([None, 0, 2]), ensure_ascii=st.booleans(), chunk=st.sampled_from([1, 3, 64, 1 << 20]))
def test_sources_read_back_exactly_whatever_the_formatting(scratch: Path, values, kind, bom, crlf, indent,
                                                           ensure_ascii, chunk) -> None:
    data = source_bytes(values, kind, bom, crlf, indent, ensure_ascii)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=f".{kind}", delete=False) as handle:
        handle.write(data)
    path = Path(handle.name)
    try:
        with mock.patch.object(records_module, "CHUNK_BYTES", chunk):
            assert list(iter_validated(iter_source_file(path), "s", reread=lambda: iter_source_file(path))) == values
    finally:
        path.unlink()


@FEW
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"\n", b"\r\n",
                                                b"\xef\xbb\xbf", b"\xff", b"\xed\xa0\x80", b'"index"', b'"0"',
                                                b'"\\ud800"', b"null", b"1", b" ", b'"category": "open_qa"']),
                               max_size=40).map(b"".join)))
def test_any_bytes_are_read_as_records_or_refused_cleanly(scratch: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=scratch, delete=False) as handle:
        handle.write(data)
    path = Path(handle.name)
    try:
        for chunk in (2, 1 << 20):
            with mock.patch.object(records_module, "CHUNK_BYTES", chunk):
                try:
                    list(iter_validated(iter_source_file(path), "s", reread=lambda: iter_source_file(path)))
                except DatasetError as error:
                    assert str(error).startswith((str(path), "source 's'"))
    finally:
        path.unlink()


# --- The merge's duplicate keys: two prompts are one key exactly when they are equal ---

# Any text records may hold (no lone surrogates: validation refuses them); "\x00" often, once a separator.
PART = st.text(st.one_of(st.sampled_from(["\x00", "a", "問"]), st.characters(codec="utf-8")),
               max_size=5)
PROMPT = st.tuples(PART, PART)


@st.composite
def prompt_pairs(draw: st.DrawFn) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two (instruction, input): unrelated, equal, or cut differently from the same "\x00"-joined or
    concatenated text."""
    first = draw(PROMPT)
    how = draw(st.sampled_from(["unrelated", "equal", "same nul-joined text", "same concatenation"]))
    if how == "unrelated":
        return first, draw(PROMPT)
    if how == "equal":
        return first, first
    if how == "same nul-joined text":
        joined = "\x00".join(first)
        cut = draw(st.sampled_from([k for k, character in enumerate(joined) if character == "\x00"]))
        return first, (joined[:cut], joined[cut + 1:])
    text = "".join(first)
    cut = draw(st.integers(0, len(text)))
    return first, (text[:cut], text[cut:])


def prompt_digest(prompt: tuple[str, str]) -> bytes:
    line, head, output = raw_record_line({"index": "0", "category": "open_qa", "instruction": prompt[0],
                                          "input": prompt[1], "output": ""})
    return record_digests(line, head, output)[0]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(pair=prompt_pairs())
def test_two_prompts_have_one_digest_only_when_equal(pair: tuple[tuple[str, str], tuple[str, str]]) -> None:
    first, second = pair
    assert (prompt_digest(first) == prompt_digest(second)) == (first == second)
