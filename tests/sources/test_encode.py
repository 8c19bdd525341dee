"""src/sources/encode.py: a JSON Lines file encoded a batch at a time on worker processes gives exactly the raw files, or
the first error, of reading it line by line in one process (source_records, the reference)."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.core.config import PathSource, SourceSpec
from src.core.errors import DatasetError
from src.core.schema import CATEGORIES
from src.raw import write_source
from src.sources import encode
from src.sources import readers as records
from src.sources.encode import (
    MAX_WORKERS,
    EncodedBatch,
    FileSlice,
    Workers,
    encode_json_lines,
    encoded_batches,
    file_identity,
)
from src.sources.fetch import source_batches, source_records

Outcome = tuple[bytes, bytes] | str  # the raw file and its index, or the error


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    with Workers() as pool:
        yield pool


def record_text(number: int, index: int | None = None, **fields: object) -> str:
    record = {"index": str(number if index is None else index), "instruction": f"質問 {number}\u2028",
              "input": "" if number % 3 else "文脈\r\n😀", "output": f"答え {number}\x00",
              "category": CATEGORIES[number % len(CATEGORIES)], **fields}
    return json.dumps(record, ensure_ascii=number % 2 == 0)


def written(batches: Iterator[EncodedBatch], out: Path) -> Outcome:
    try:
        write_source(batches, out / "s.jsonl", out / "s.npy")
    except DatasetError as error:
        return str(error)
    return (out / "s.jsonl").read_bytes(), (out / "s.npy").read_bytes()


def outcomes(path: Path, tmp_path: Path, pool: Workers, number_records: bool = False) -> tuple[Outcome, Outcome]:
    """(reference, batched) outcome of raw-encoding the source file at ``path``."""
    spec = SourceSpec("s", PathSource(str(path)), number_records=number_records)
    reference, batched = tmp_path / "reference", tmp_path / "batched"
    reference.mkdir(exist_ok=True)
    batched.mkdir(exist_ok=True)
    return (written(encoded_batches(source_records(spec, tmp_path)), reference),
            written(source_batches(spec, tmp_path, pool), batched))


def test_workers_write_the_bytes_of_one_process(tmp_path: Path, workers: Workers) -> None:
    lines = [record_text(n) + ("\r\n" if n % 5 == 0 else "\n") for n in range(600)]
    path = tmp_path / "source.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(lines).rstrip("\n").encode("utf-8"))  # a BOM, no final \n
    with mock.patch.object(encode, "BATCH_BYTES", 1000):
        reference, batched = outcomes(path, tmp_path, workers)
        batches = list(source_batches(SourceSpec("s", PathSource(str(path))), tmp_path, workers))
    assert workers.count == min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    assert len(batches) >= 80  # a batch per 1000 bytes read: many on every worker
    assert sum(map(len, batches)) == 600
    assert isinstance(reference, tuple) and batched == reference


# Lines a source may hold: good records (numbered n, so each index is new), records that repeat an index, and each
# kind of line the reader or validation refuses.
LINE_KINDS = {
    "good": lambda n: record_text(n) + "\n",
    "crlf": lambda n: record_text(n) + "\r\n",
    "repeat": lambda n: record_text(n, index=1) + "\n",  # the index of line 1's record
    "blank": lambda n: " \r\n" if n % 2 else "\n",
    "malformed": lambda n: record_text(n)[:-1] + "\n",
    "bad utf-8": lambda n: '{"index": "\xff"}\n',
    "lone surrogate": lambda n: record_text(n, instruction="\\ud800")[:-1].replace("\\\\ud800", "\\ud800") + "}\n",
    "unknown category": lambda n: record_text(n, category="poetry") + "\n",
    "not an object": lambda n: "[1, 2]\n",
}


def source_bytes(kinds: list[str], bom: bool, final_newline: bool) -> bytes:
    text = "".join(LINE_KINDS[kind](n) for n, kind in enumerate(kinds, 1))
    data = text.encode("utf-8", "surrogateescape").replace("\xff".encode(), b"\xff")
    if not final_newline:
        data = data.removesuffix(b"\n")
    return (b"\xef\xbb\xbf" if bom else b"") + data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(list(LINE_KINDS)), max_size=40).map(
           lambda kinds: ["good"] * 12 + kinds if len(kinds) % 2 else kinds),
       bom=st.booleans(), final_newline=st.booleans(), batch_bytes=st.sampled_from([40, 150, 700, 1 << 20]),
       number_records=st.booleans())
def test_the_first_problem_and_the_bytes_are_those_of_one_process(
        tmp_path: Path, workers: Workers, kinds: list[str], bom: bool, final_newline: bool, batch_bytes: int,
        number_records: bool) -> None:
    path = tmp_path / "source.jsonl"
    path.write_bytes(source_bytes(kinds, bom, final_newline))
    # Small batches, and indexes spilled 4 at a time: problems fall in other batches than the repeats before them.
    with mock.patch.object(encode, "BATCH_BYTES", batch_bytes), mock.patch.object(records, "INDEX_CHECK_RECORDS", 4):
        reference, batched = outcomes(path, tmp_path, workers, number_records)
    assert batched == reference


def test_the_line_kinds_are_what_they_say(tmp_path: Path, workers: Workers) -> None:
    """Each kind of bad line gives its own error: the property above compares real problems, not one."""
    messages: dict[str, str] = {}
    for kind in LINE_KINDS:
        path = tmp_path / f"{kind}.jsonl"
        path.write_bytes(source_bytes(["good", kind, "good"], bom=False, final_newline=True))
        reference, batched = outcomes(path, tmp_path, workers)
        assert batched == reference
        messages[kind] = reference if isinstance(reference, str) else ""
    assert messages["good"] == messages["crlf"] == ""
    assert messages["repeat"] == (f"{tmp_path}/repeat.jsonl:2: index '1' appears twice in source 's'; give every "
                                  "record its own index")
    assert messages["blank"] == f"{tmp_path}/blank.jsonl:2: blank line inside JSON Lines; remove it"
    assert messages["malformed"].startswith(f"{tmp_path}/malformed.jsonl:2: malformed JSON (")
    assert messages["bad utf-8"] == f"{tmp_path}/bad utf-8.jsonl:2: invalid UTF-8 bytes; save the file as UTF-8"
    assert messages["lone surrogate"] == (f"{tmp_path}/lone surrogate.jsonl:2: field 'instruction' holds a lone "
                                          "surrogate escape (\\ud800-\\udfff) that is not valid UTF-8; fix or remove "
                                          "that escape")
    assert messages["unknown category"].startswith(f"{tmp_path}/unknown category.jsonl:2: category 'poetry' is unknown")
    assert messages["not an object"] == (f"{tmp_path}/not an object.jsonl:2: expected a JSON object with fields "
                                         "index, instruction, input, output, category, got a list")


def test_a_record_nested_deeper_than_json_reads_gives_the_error_of_one_process(tmp_path: Path, workers: Workers) -> None:
    """orjson reads 1,024 levels, json about 1,000: a record nested in between, whose quotes are those of a record of
    strings, is refused for its nesting on the workers too (they used to report its field's type)."""
    path = tmp_path / "deep.jsonl"
    deep = '{"index": "2", "instruction": "i", "input": ' + "[" * 1010 + '"x"' + "]" * 1010 + ', "output": "o", ' \
        '"category": "open_qa"}'
    assert deep.count('"') == 20
    path.write_text(record_text(1) + "\n" + deep + "\n", encoding="utf-8")
    reference, batched = outcomes(path, tmp_path, workers)
    assert batched == reference == f"{path}:2: JSON nested too deeply; each line must hold one flat JSON object"


class _Appending:
    """A digest that appends a line to the file being read the first time it is fed: a writer racing the stage."""

    def __init__(self, path: Path) -> None:
        self._path, self._done = path, False
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        if not self._done:
            self._done = True
            with self._path.open("ab") as file:
                file.write((record_text(999) + "\n").encode("utf-8"))


def test_a_file_changed_while_read_is_refused(tmp_path: Path, workers: Workers) -> None:
    path = tmp_path / "source.jsonl"
    path.write_text("".join(record_text(n) + "\n" for n in range(40)), encoding="utf-8")
    spec = SourceSpec("s", PathSource(str(path)))
    with mock.patch.object(encode, "BATCH_BYTES", 600), pytest.raises(DatasetError) as caught:
        list(source_batches(spec, tmp_path, workers, _Appending(path)))
    assert str(caught.value) == f"{path}: the file changed while it was read; run again once nothing writes to it"


def test_a_slice_of_a_replaced_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "source.jsonl"
    path.write_text(record_text(1) + "\n", encoding="utf-8")
    part = FileSlice(str(path), file_identity(path.stat()), 0, path.stat().st_size, 1)
    assert len(encode_json_lines("source", part, None, False)) == 1
    path.unlink()
    path.write_text(record_text(2) + "\n", encoding="utf-8")  # another inode
    with pytest.raises(DatasetError, match=r"^source: the file changed while it was read"):
        encode_json_lines("source", part, None, False)
