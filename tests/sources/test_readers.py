"""Reading and validating sources: every kind of bad input is one clear DatasetError naming file and line.

Decided rules: a UTF-8 BOM is stripped and CRLF line endings are accepted (repaired: the records are the
clean file's); a blank line inside JSON Lines is an error (blank lines at the end are tolerated);
everything else below is an error whose text says what to fix and where.
"""
from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.core.errors import DatasetError
from src.core.schema import CATEGORIES, FIELDS
from src.sources import readers as records_module
from src.sources.readers import JsonLines, iter_source_file, iter_validated, validate_record

EVERY_FIELD = "every record needs index, instruction, input, output, category"
OBJECT_EXPECTED = "expected a JSON object with fields index, instruction, input, output, category"
NOT_A_STREAM = "expected a JSON array of records or JSON Lines objects, but the file starts with"
REPEATED = "the name {!r} appears twice in one object; keep only the value you mean"


def record(number: int, **fields: object) -> dict:
    return {"index": str(number), "instruction": f"質問 {number}", "input": "", "output": f"答え {number}",
            "category": CATEGORIES[number % len(CATEGORIES)], **fields}


GOOD = [record(0), record(1, input="文脈\nあり"), record(2)]


def array_bytes(values: list) -> bytes:
    """A JSON array with element k (1-based) on line k + 1: '[' on line 1, ']' on the last."""
    return ("[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in values) + "\n]\n").encode("utf-8")


def jsonl_bytes(values: list) -> bytes:
    """JSON Lines: element k (1-based) on line k."""
    return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values).encode("utf-8")


KINDS = {"array": array_bytes, "jsonl": jsonl_bytes}


def read(path: Path, name: str = "src") -> list[dict]:
    return list(iter_validated(iter_source_file(path), name, reread=lambda: iter_source_file(path)))


def error_of(path: Path) -> str:
    with pytest.raises(DatasetError) as caught:
        read(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- errors that depend on the file kind: (id, file name, bytes, expected message with {f} for the path) ---

def _replace(data: bytes, old: bytes, new: bytes, occurrence: int = 1) -> bytes:
    """``data`` with the ``occurrence``-th ``old`` (from 1) replaced by ``new``."""
    parts = data.split(old)
    assert len(parts) > occurrence
    return old.join(parts[:occurrence]) + new + old.join(parts[occurrence:])


FILE_ERRORS: list[tuple[str, str, bytes, str]] = [
    ("empty", "a.json", b"", "{f}: the file is empty; it must hold a JSON array of records or JSON Lines"),
    ("only whitespace", "a.jsonl", b" \r\n\n\t\n", "{f}: the file is empty; it must hold a JSON array of records or JSON Lines"),
    ("only a BOM", "a.json", codecs.BOM_UTF8, "{f}: the file is empty; it must hold a JSON array of records or JSON Lines"),
    ("a number", "a.json", b"42\n", f"{{f}}: {NOT_A_STREAM} '4'"),
    ("a string", "a.json", b'"records"\n', f"{{f}}: {NOT_A_STREAM} '\"'"),
    ("null", "a.json", b"null", f"{{f}}: {NOT_A_STREAM} 'n'"),
    ("text", "a.json", "レコード".encode(), f"{{f}}: {NOT_A_STREAM} 'レ'"),
    ("utf-16", "a.json", "[]".encode("utf-16"), "{f}: the file is UTF-16, not UTF-8; save it as UTF-8"),
    ("empty array", "a.json", b"[\n ]\n", "{f}:2: the JSON array holds no records; a source needs at least one"),
    ("array of numbers", "a.json", b"[\n1,\n2]", f"{{f}}:2 (record 1): {OBJECT_EXPECTED}, got a number"),
    ("array of arrays", "a.json", b"[[]]", f"{{f}}:1 (record 1): {OBJECT_EXPECTED}, got a list"),
    ("array of strings", "a.json", b'["x"]', f"{{f}}:1 (record 1): {OBJECT_EXPECTED}, got a string"),
    ("array truncated inside a record", "a.json", array_bytes(GOOD)[:-30],
     "{f}:4: record 3 is truncated (the file ends before it is closed); fix the JSON there"),
    ("array truncated inside a string", "a.json", array_bytes(GOOD).split('"答え 2"'.encode())[0] + '"答'.encode(),
     "{f}:4: record 3 is truncated (the file ends before it is closed); fix the JSON there"),
    ("array without its closing bracket", "a.json", array_bytes(GOOD)[:-3],
     "{f}:4: the JSON array is truncated (no closing ']')"),
    ("array cut after a comma", "a.json", array_bytes(GOOD).rsplit(b"\n", 3)[0] + b"\n",
     "{f}:4: the JSON array is truncated (no closing ']')"),
    ("array with an unquoted value", "a.json", _replace(array_bytes(GOOD), '"答え 1"'.encode(), "答え 1".encode()),
     "{f}:3: record 2 is malformed (expecting value); fix the JSON there"),
    ("array with a single-quoted key", "a.json", _replace(array_bytes(GOOD), b'"category"', b"'category'"),
     "{f}:2: record 1 is malformed (expecting property name enclosed in double quotes); fix the JSON there"),
    ("array with a raw tab in a string", "a.json", _replace(array_bytes(GOOD), "答え 2".encode(), "答え\t2".encode()),
     "{f}:4: record 3 is malformed (invalid control character); fix the JSON there"),
    ("array with a missing comma", "a.json", _replace(array_bytes(GOOD), b"},\n", b"}\n"),
     "{f}:3: expected ',' or ']' after record 1, found '{{'; fix the JSON there"),
    ("array with a trailing comma", "a.json", _replace(array_bytes(GOOD), b"}\n]", b"},\n]"),
     "{f}:5: trailing comma before ']'; remove it"),
    ("array followed by more data", "a.json", array_bytes(GOOD) + b"[]\n",
     "{f}:6: unexpected data after the JSON array; remove it"),
    ("jsonl with an unquoted value", "a.jsonl", _replace(jsonl_bytes(GOOD), '"答え 1"'.encode(), "答え 1".encode()),
     "{f}:2: malformed JSON (expecting value, column 68); each line must hold one complete JSON object"),
    ("jsonl with two objects on a line", "a.jsonl", _replace(jsonl_bytes(GOOD), b"}\n", b"} {}\n"),
     "{f}:1: malformed JSON (extra data, column 93); each line must hold one complete JSON object"),
    ("jsonl with a pretty-printed record", "a.jsonl", json.dumps(GOOD[0], indent=1).encode(),
     "{f}:1: malformed JSON (expecting property name enclosed in double quotes, column 2); "
     "each line must hold one complete JSON object"),
    ("jsonl truncated in the last line", "a.jsonl", jsonl_bytes(GOOD)[:-20],
     "{f}:3: truncated JSON (the file ends before it is closed, column 80); each line must hold one complete JSON object"),
    ("jsonl with an array line", "a.jsonl", jsonl_bytes([GOOD[0], [GOOD[1]]]), f"{{f}}:2: {OBJECT_EXPECTED}, got a list"),
    ("jsonl with a number line", "a.jsonl", jsonl_bytes(GOOD) + b"7\n", f"{{f}}:4: {OBJECT_EXPECTED}, got a number"),
    ("jsonl with a blank line", "a.jsonl", jsonl_bytes(GOOD[:1]) + b"\n" + jsonl_bytes(GOOD[1:]),
     "{f}:2: blank line inside JSON Lines; remove it"),
    ("jsonl with a CRLF blank line", "a.jsonl", (jsonl_bytes(GOOD[:2]) + b"\n" + jsonl_bytes(GOOD[2:])).replace(b"\n", b"\r\n"),
     "{f}:3: blank line inside JSON Lines; remove it"),
    ("jsonl with a whitespace-only line", "a.jsonl", jsonl_bytes(GOOD[:1]) + b" \t\n" + jsonl_bytes(GOOD[1:]),
     "{f}:2: blank line inside JSON Lines; remove it"),
    ("jsonl with blank lines then a record", "a.jsonl", jsonl_bytes(GOOD[:1]) + b"\n\n\n" + jsonl_bytes(GOOD[1:]),
     "{f}:2: blank line inside JSON Lines; remove it"),
    # A name twice in one object (RFC 8259 leaves which value counts undefined): at any depth, on any line, also
    # where the value would be refused for its type anyway, and where orjson's fast path cannot rule it out.
    ("array with a repeated name", "a.json", _replace(array_bytes(GOOD), b'"output": ', b'"output": "a", "output": ', 2),
     f"{{f}}:3 (record 2): {REPEATED.format('output')}"),
    ("array with a repeated name in a nested object", "a.json",
     _replace(array_bytes(GOOD), b'"input": ""', '"input": {"版": 1, "版": 2}'.encode(), 2),
     f"{{f}}:4 (record 3): {REPEATED.format('版')}"),
    *[(f"jsonl with a repeated name on the {where} line", "a.jsonl",
       _replace(jsonl_bytes(GOOD), b'"category": ', b'"category": "open_qa", "category": ', number),
       f"{{f}}:{number}: {REPEATED.format('category')}") for where, number in (("first", 1), ("middle", 2), ("last", 3))],
    ("jsonl with a repeated name in a nested object", "a.jsonl",
     _replace(jsonl_bytes(GOOD), b'"input": ""', b'"input": {"x": [{"y": 1, "y": 1}]}', 2),
     f"{{f}}:3: {REPEATED.format('y')}"),
    ("jsonl with a repeated name and escaped quotes", "a.jsonl",
     _replace(jsonl_bytes(GOOD), b'"output": ', b'"output": "\\"a\\"", "output": ', 2),
     f"{{f}}:2: {REPEATED.format('output')}"),
    ("jsonl with a repeated name after an escaped backslash", "a.jsonl",
     _replace(jsonl_bytes(GOOD), b'"output": ', b'"output": "a\\\\", "output": ', 2),
     f"{{f}}:2: {REPEATED.format('output')}"),
    ("jsonl with a repeated name among values of other types", "a.jsonl",
     jsonl_bytes(GOOD[:1]) + b'{"index": "1", "index": 1, "instruction": "i", "input": 2, "output": "o", '
                             b'"category": "open_qa"}\n' + jsonl_bytes(GOOD[2:]),
     f"{{f}}:2: {REPEATED.format('index')}"),
    ("jsonl with a repeated name and a lone surrogate", "a.jsonl",
     _replace(jsonl_bytes(GOOD), b'"output": ', b'"output": "\\ud800", "output": ', 2),
     f"{{f}}:2: {REPEATED.format('output')}"),
    ("array nested too deeply", "a.json", b"[" + b"[" * 100_000 + b"]" * 100_001,
     "{f}:1: record 1 is nested too deeply; a record is one flat JSON object"),
    ("jsonl nested too deeply", "a.jsonl", b'{"index": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
     "{f}:1: JSON nested too deeply; each line must hold one flat JSON object"),
]


@pytest.mark.parametrize(("name", "data", "expected"), [case[1:] for case in FILE_ERRORS],
                         ids=[case[0] for case in FILE_ERRORS])
def test_malformed_files_give_one_line_naming_file_and_line(tmp_path: Path, name: str, data: bytes,
                                                            expected: str) -> None:
    path = write(tmp_path, name, data)
    assert error_of(path) == expected.format(f=path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    assert error_of(path) == f"{path}: file not found; check the source's path"


def test_a_directory_is_not_a_source(tmp_path: Path) -> None:
    assert error_of(tmp_path) == f"{tmp_path}: cannot open (Is a directory)"


def test_the_name_given_for_a_download_is_used_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "sha256-0123", jsonl_bytes([GOOD[0], {**GOOD[1], "output": None}]))
    url = "http://127.0.0.1:1/dolly.jsonl"
    with pytest.raises(DatasetError) as caught:
        list(iter_validated(iter_source_file(path, name=url), "dolly_ja", reread=lambda: iter_source_file(path, name=url)))
    assert str(caught.value) == f"{url}:2: field 'output' is null; it must be a string"


# --- record-level errors, the same for both kinds: bad record is the 2nd, so line 3 (array) or 2 (jsonl) ---

def where(kind: str, path: Path | str, number: int = 2) -> str:
    return f"{path}:{number + 1} (record {number})" if kind == "array" else f"{path}:{number}"


def without(field: str) -> dict:
    return {key: value for key, value in record(1).items() if key != field}


RECORD_ERRORS: list[tuple[str, object, str]] = [
    *[(f"missing {field}", without(field), f"field '{field}' is missing; {EVERY_FIELD}") for field in FIELDS],
    *[(f"{field} is {label}", record(1, **{field: value}), f"field '{field}' is {kind}; it must be a string")
      for field in FIELDS
      for label, value, kind in [("null", None, "null"), ("a number", 7, "a number"), ("a float", 1.5, "a number"),
                                 ("a list", ["x"], "a list"), ("an object", {"x": 1}, "an object"),
                                 ("a boolean", True, "a boolean")]],
    ("empty instruction", record(1, instruction=""), "field 'instruction' is empty; 'instruction' must have text"),
    ("blank instruction", record(1, instruction=" \n\t\u3000"), "field 'instruction' is empty; 'instruction' must have text"),
    ("empty output", record(1, output=""), "field 'output' is empty; 'output' must have text"),
    ("blank output", record(1, output="\n\n"), "field 'output' is empty; 'output' must have text"),
    ("empty index", record(1, index=""), "field 'index' is empty; give every record an index"),
    *[(f"category {bad!r}", record(1, category=bad),
       f"category '{bad}' is unknown; use one of {', '.join(CATEGORIES)}")
      for bad in ["Open_QA", "open-qa", "", " open_qa", "qa", "オープンQA"]],
    ("duplicate index", record(0, instruction="別の質問"), "index '0' appears twice in source 'src'; "
                                                           "give every record its own index"),
    ("not an object", "just text", f"{OBJECT_EXPECTED}, got a string"),
    ("null record", None, f"{OBJECT_EXPECTED}, got null"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("bad", "problem"), [case[1:] for case in RECORD_ERRORS], ids=[c[0] for c in RECORD_ERRORS])
def test_bad_records_are_refused_naming_file_line_and_field(tmp_path: Path, kind: str, bad: object,
                                                            problem: str) -> None:
    path = write(tmp_path, f"source.{kind}", KINDS[kind]([GOOD[0], bad, GOOD[2]]))
    assert error_of(path) == f"{where(kind, path)}: {problem}"


LONE_SURROGATE = ("holds a lone surrogate escape (\\ud800-\\udfff) that is not valid UTF-8; fix or remove that escape")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", ["index", "instruction", "input", "output", "category"])
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udbff", "\\ude00y", "\\udc00\\ud800"])
def test_a_lone_surrogate_escape_is_refused(tmp_path: Path, kind: str, field: str, escape: str) -> None:
    marker = "SURROGATE-HERE"
    data = KINDS[kind]([GOOD[0], record(1, **{field: marker}), GOOD[2]])
    path = write(tmp_path, f"source.{kind}", data.replace(marker.encode(), escape.encode()))
    assert error_of(path) == f"{where(kind, path)}: field '{field}' {LONE_SURROGATE}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_surrogate_pair_escape_is_one_valid_character(tmp_path: Path, kind: str) -> None:
    data = KINDS[kind]([record(0, output="MARK")]).replace(b"MARK", b"\\ud83d\\uddfb \\u5bcc\\u58eb")
    assert read(write(tmp_path, f"s.{kind}", data))[0]["output"] == "🗻 富士"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("bad_bytes", "label"), [(b"\xff", "0xff"), (b"\xc3", "truncated sequence"),
                                                  (b"\xed\xa0\x80", "encoded surrogate"), (b"\xc0\xaf", "overlong"),
                                                  (b"\x93\x94", "cp1252 quotes")])
def test_invalid_utf8_is_refused_with_its_line(tmp_path: Path, kind: str, bad_bytes: bytes, label: str) -> None:
    data = KINDS[kind]([GOOD[0], GOOD[1], record(2, output="MARK")]).replace(b"MARK", bad_bytes)
    path = write(tmp_path, f"source.{kind}", data)
    line = 4 if kind == "array" else 3  # the third record; json.dumps escapes newlines: one line per record
    assert error_of(path) == f"{path}:{line}: invalid UTF-8 bytes; save the file as UTF-8"


def test_invalid_utf8_line_is_right_whatever_the_chunk_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = [record(n, input="行\n" * (n % 3)) for n in range(40)]
    data = array_bytes(values).replace('"答え 33"'.encode(), b'"\xff"')
    path = write(tmp_path, "source.json", data)
    for chunk in (1, 2, 3, 7, 64, 4096):
        monkeypatch.setattr(records_module, "CHUNK_BYTES", chunk)
        assert error_of(path) == f"{path}:35: invalid UTF-8 bytes; save the file as UTF-8", chunk


# --- repairs: BOM and CRLF give exactly the clean file's records ---

REPAIRS = {
    "bom": lambda data: codecs.BOM_UTF8 + data,
    "crlf": lambda data: data.replace(b"\n", b"\r\n"),
    "bom and crlf": lambda data: codecs.BOM_UTF8 + data.replace(b"\n", b"\r\n"),
    "blank lines at the end": lambda data: data + b"\n\n \n",
    "crlf blank lines at the end": lambda data: data.replace(b"\n", b"\r\n") + b"\r\n\r\n",
    "no final newline": lambda data: data.rstrip(b"\n"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("repair", REPAIRS)
def test_repaired_input_gives_the_clean_files_records_and_bytes(tmp_path: Path, kind: str, repair: str) -> None:
    values = [*GOOD, record(3, input="改行\r\nを含む\u2028文", output='quote " backslash \\ tab \t')]
    clean = read(write(tmp_path, f"clean.{kind}", KINDS[kind](values)))
    repaired = read(write(tmp_path, f"repaired.{kind}", REPAIRS[repair](KINDS[kind](values))))
    assert repaired == clean == [validate_record(v, "x") for v in values]
    assert json.dumps(repaired, ensure_ascii=False) == json.dumps(clean, ensure_ascii=False)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 17, 4096])
def test_array_reading_and_line_numbers_do_not_depend_on_chunk_boundaries(tmp_path: Path, chunk: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    values = [record(n, input="長い文脈。" * (n % 5), output="答え\n" * (1 + n % 3) + "🗻") for n in range(30)]
    text = "[\r\n" + ",\r\n\r\n".join(json.dumps(v, ensure_ascii=False, indent=2) for v in values) + "\r\n]"
    path = write(tmp_path, "pretty.json", codecs.BOM_UTF8 + text.encode("utf-8"))
    expected_lines = []
    line = 2
    for value in values:
        expected_lines.append(line)
        line += json.dumps(value, ensure_ascii=False, indent=2).count("\n") + 2
    monkeypatch.setattr(records_module, "CHUNK_BYTES", chunk)
    located = list(iter_source_file(path))
    assert [value for _, value in located] == values
    assert [where for where, _ in located] == [f"{path}:{n} (record {k})" for k, n in enumerate(expected_lines, 1)]
    bad = path.read_bytes().replace('"答え\\n🗻"'.encode(), b'"x" "y"', 1)
    write(tmp_path, "pretty.json", bad)
    assert error_of(path) == f"{path}:{expected_lines[0] + 4}: record 1 is malformed (expecting ',' delimiter); fix the JSON there"


def big_pretty_array(count: int) -> tuple[str, list[dict], list[int]]:
    """A multi-line JSON array text, its values and each record's line, counted here from the text itself."""
    values = [record(n, input="長い文脈。" * (n % 40), output=f"答え {n}") for n in range(count)]
    pieces = [json.dumps(v, ensure_ascii=False, indent=2) for v in values]
    text = "[\n" + ",\n".join(pieces) + "\n]\n"
    starts, line = [], 2  # '[' is line 1; each record is followed by ",\n" (or "\n]")
    for piece in pieces:
        starts.append(line)
        line += piece.count("\n") + 1
    assert line == text.count("\n")
    return text, values, starts


BIG_RECORDS = 6000


def test_array_line_numbers_stay_exact_after_buffer_refills(tmp_path: Path) -> None:
    text, values, starts = big_pretty_array(BIG_RECORDS)
    data = text.encode("utf-8")
    assert len(data) > 2 * records_module.CHUNK_BYTES + (1 << 18)  # the buffer is refilled at least twice
    path = write(tmp_path, "big.json", data)
    located = list(iter_source_file(path))
    assert [value for _, value in located] == values
    assert [where for where, _ in located] == [f"{path}:{n} (record {k})" for k, n in enumerate(starts, 1)]


def test_array_errors_after_buffer_refills_name_their_exact_line(tmp_path: Path) -> None:
    text, _, starts = big_pretty_array(BIG_RECORDS)
    number = BIG_RECORDS - 200  # 1-based; its bytes lie past the second refill
    assert len(text[: text.index(f'"答え {number - 1}"')].encode("utf-8")) > 2 * records_module.CHUNK_BYTES
    unquoted = text.replace(f'"答え {number - 1}"', f"答え {number - 1}")
    bad_line = text.count("\n", 0, text.index(f'"答え {number - 1}"')) + 1
    assert bad_line == starts[number - 1] + 4  # the output line, inside the record
    path = write(tmp_path, "unquoted.json", unquoted.encode("utf-8"))
    assert error_of(path) == f"{path}:{bad_line}: record {number} is malformed (expecting value); fix the JSON there"
    end_of_record = text.index("},\n", text.index(f'"答え {number - 1}"'))
    no_comma = text[:end_of_record] + "}\n" + text[end_of_record + 3:]
    path = write(tmp_path, "no-comma.json", no_comma.encode("utf-8"))
    assert error_of(path) == (f"{path}:{starts[number]}: expected ',' or ']' after record {number}, found '{{'; "
                              "fix the JSON there")


def test_a_record_that_never_closes_is_reported_not_read_forever(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "CHUNK_BYTES", 64)
    monkeypatch.setattr(records_module, "MAX_RECORD_CHARS", 1000)
    path = write(tmp_path, "huge.json", b'[\n{"index": "0", "instruction": "' + b"x" * 5000 + b"\n")
    assert error_of(path) == f"{path}:2: record 1 is not closed within 1000 characters; fix the JSON there"


def test_unicode_line_separators_do_not_split_json_lines(tmp_path: Path) -> None:
    values = [record(0, input="a\u2028b\u2029c\x85d\x0be\x0cf")]
    assert read(write(tmp_path, "s.jsonl", jsonl_bytes(values))) == values


# --- validate_record and iter_validated directly ---

@pytest.mark.parametrize("kind", KINDS)
def test_quotes_and_backslashes_in_text_are_not_taken_for_repeated_names(tmp_path: Path, kind: str) -> None:
    values = [record(0, output='彼は"はい"と言った\\'), record(1, instruction='C:\\"x"', input="\\\\"), record(2)]
    assert read(write(tmp_path, f"s.{kind}", KINDS[kind](values))) == values


def _json_string(text: str, unicode_quotes: bool) -> str:
    """``text`` as a JSON string, its quotes written as \\" or as \\u0022."""
    return '"' + "".join("\\u0022" if unicode_quotes and c == '"' else json.dumps(c, ensure_ascii=False)[1:-1]
                         for c in text) + '"'


def _read_line(line: bytes, records: bool) -> object:
    """The value of one JSON Lines line; with ``records``, validated as the raw stage's workers do (a record that
    fails validation is checked for a repeated name first)."""
    reader = JsonLines("f.jsonl", records=records)
    for where, value in reader.values([line]):
        if not records:
            return value
        try:
            return validate_record(value, where)
        except DatasetError:
            reader.recheck(1, line)
            raise
    raise AssertionError("no value")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*FIELDS, "x"]), st.one_of(st.text('a"\\あ\n', max_size=3), st.integers(0, 9))),
                min_size=1, max_size=7), st.booleans(), st.booleans())
def test_a_json_lines_object_is_refused_exactly_when_it_repeats_a_name(pairs: list[tuple[str, str | int]],
                                                                       unicode_quotes: bool, records: bool) -> None:
    line = "{" + ", ".join(f"{_json_string(name, False)}: "
                           + (_json_string(value, unicode_quotes) if isinstance(value, str) else str(value))
                           for name, value in pairs) + "}\n"
    names = [name for name, _ in pairs]
    repeated = next((name for at, name in enumerate(names) if name in names[:at]), None)
    try:
        value = _read_line(line.encode(), records)
    except DatasetError as error:
        assert repeated is not None or records, error  # without records, only a repeated name is refused
        if repeated is not None:
            assert str(error) == f"f.jsonl:1: {REPEATED.format(repeated)}"
        return
    assert repeated is None
    if not records:
        assert value == dict(pairs)


def test_a_repeated_name_is_the_error_of_a_record_that_fails_validation_too() -> None:
    """Five names and twenty quotes: the workers' fast path leaves a repeat to recheck() of the refused record."""
    line = b'{"index": "0", "index": 1, "instruction": "i", "input": 2, "output": "o", "category": "open_qa"}\n'
    assert line.count(b'"') == 20
    with pytest.raises(DatasetError) as caught:
        _read_line(line, records=True)
    assert str(caught.value) == f"f.jsonl:1: {REPEATED.format('index')}"


def test_validate_record_keeps_the_schema_fields_in_order_and_drops_others() -> None:
    value = {"category": "open_qa", "extra": 1, "output": "o", "input": "", "instruction": "i", "index": "5"}
    assert list(validate_record(value, "w")) == list(FIELDS)
    assert validate_record(value, "w") == {"index": "5", "instruction": "i", "input": "", "output": "o",
                                           "category": "open_qa"}


def test_renamed_fields_and_numbered_records() -> None:
    value = {"instruction": "i", "context": "c", "response": "r", "category": "summarization"}
    got = validate_record(value, "w", renames={"context": "input", "response": "output"}, index="3")
    assert got == {"index": "3", "instruction": "i", "input": "c", "output": "r", "category": "summarization"}
    with pytest.raises(DatasetError) as caught:
        validate_record({**value, "response": " "}, "f.json:9", renames={"context": "input", "response": "output"},
                        index="0")
    assert str(caught.value) == "f.json:9: field 'output' is empty; 'output' must have text"


def test_a_source_with_no_records_is_refused() -> None:
    with pytest.raises(DatasetError) as caught:
        list(iter_validated(iter([]), "additions", reread=lambda: iter([])))
    assert str(caught.value) == "source 'additions' holds no records"


def validated(values: Sequence[tuple[str, object]], source: str) -> list[dict]:
    return list(iter_validated(iter(values), source, reread=lambda: iter(values)))


def test_duplicate_index_is_per_source_and_exact() -> None:
    values = [("w1", record(0)), ("w2", record(1, index="0 ")), ("w3", record(2, index="00"))]
    assert [r["index"] for r in validated(values, "a")] == ["0", "0 ", "00"]
    assert len(validated([("w", record(0))], "b")) == 1  # another source may reuse "0"
    with pytest.raises(DatasetError) as caught:
        validated([*values, ("f.jsonl:4", record(3, index="00"))], "a")
    assert str(caught.value) == "f.jsonl:4: index '00' appears twice in source 'a'; give every record its own index"


def test_a_repeated_index_is_reported_before_a_later_problem_and_after_an_earlier_one(monkeypatch) -> None:
    monkeypatch.setattr(records_module, "INDEX_CHECK_RECORDS", 2)  # the repeat and the problem in other batches
    values = [(f"w{n}", record(n)) for n in range(6)]
    repeat = ("w6", record(6, index="1"))
    with pytest.raises(DatasetError) as caught:
        validated([*values, repeat, ("w7", record(7, category="x")), ("w8", record(8, index="2"))], "a")
    assert str(caught.value) == "w6: index '1' appears twice in source 'a'; give every record its own index"
    with pytest.raises(DatasetError) as caught:
        validated([*values[:2], ("w2", record(2, category="x")), *values[2:], repeat], "a")
    assert str(caught.value).startswith("w2: category 'x' is unknown")


def test_records_before_an_error_are_streamed_and_the_error_comes_at_the_bad_one(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", jsonl_bytes([GOOD[0], GOOD[1], record(2, category="x")]))
    stream = iter_validated(iter_source_file(path), "s", reread=lambda: iter_source_file(path))
    assert [next(stream)["index"], next(stream)["index"]] == ["0", "1"]
    with pytest.raises(DatasetError, match=rf"^{path}:3: category 'x' is unknown"):
        next(stream)



@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_the_source_digest_is_of_every_byte_read(tmp_path: Path, monkeypatch, kind: str, chunk: int) -> None:
    """The sha256 the dataset card names is fed as the file is read (JSON Lines: a batch of lines at a time)."""
    monkeypatch.setattr(records_module, "CHUNK_BYTES", chunk)
    data = codecs.BOM_UTF8 + KINDS[kind](GOOD).replace(b"\n", b"\r\n")
    path = write(tmp_path, f"source.{kind}", data)
    digest = hashlib.sha256()
    assert len(list(iter_source_file(path, digest=digest))) == len(GOOD)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
