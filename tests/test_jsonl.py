"""The line format and atomic outputs."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src import jsonl
from src.jsonl import (
    IntegerChunks,
    atomic_directory,
    atomic_file,
    count_lines,
    durable,
    merged_head_start,
    prompt_bytes,
    raw_record_line,
    read_prompts,
    shard_line,
    write_behind,
    write_json,
    write_json_rows,
)
from tests.records_data import record_line

AWKWARD_TEXTS = ["", "富士山は日本一高い山です。", 'quote " and backslash \\', "tab\tnew\nline\rreturn",
                 "line separator \u2028 and paragraph \u2029", "emoji 🗻 and NUL \x00", "/ slash <b>&amp;</b>"]


@pytest.mark.parametrize("text", AWKWARD_TEXTS)
def test_shard_line_is_exactly_json_dumps_with_default_separators(text: str) -> None:
    record = {"index": "9", "category": "open_qa", "output": text + "o", "input": text, "instruction": "i" + text}
    expected = json.dumps({"instruction": "i" + text, "input": text, "output": text + "o"}, ensure_ascii=False)
    assert shard_line(record) == (expected + "\n").encode("utf-8")


def test_shard_line_bytes_for_a_known_record() -> None:
    line = shard_line({"instruction": "山は？", "input": "", "output": "富士\n山", "category": "open_qa"})
    assert line == '{"instruction": "山は？", "input": "", "output": "富士\\n山"}\n'.encode()
    assert not line.startswith(b"\xef\xbb\xbf")


def test_count_lines_counts_newlines_only_not_unicode_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes('{"a": "x\u2028y\x85z"}\n{"a": "2"}\n'.encode("utf-8"))
    assert count_lines(path) == 2


def test_atomic_file_replaces_only_on_success_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "shard.jsonl"
    with atomic_file(target) as stream:
        stream.write(b"old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as stream:
            stream.write(b"partial")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["shard.jsonl"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def test_atomic_file_sweeps_temporaries_left_by_a_killed_run(tmp_path: Path) -> None:
    (tmp_path / ".shard.jsonl.abc123.tmp").write_bytes(b"partial from a SIGKILLed run")
    (tmp_path / ".other.jsonl.abc123.tmp").write_bytes(b"not ours")
    with atomic_file(tmp_path / "shard.jsonl") as stream:
        stream.write(b"new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.jsonl.abc123.tmp", "shard.jsonl"]


def test_atomic_directory_swaps_whole_directories(tmp_path: Path) -> None:
    target = tmp_path / "raw"
    with atomic_directory(target) as staging:
        (staging / "a.jsonl").write_bytes(b"1\n")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "b.jsonl").write_bytes(b"half")
            raise RuntimeError("bad source")
    assert sorted(p.name for p in target.iterdir()) == ["a.jsonl"]
    with atomic_directory(target) as staging:
        (staging / "c.jsonl").write_bytes(b"3\n")
    assert sorted(p.name for p in target.iterdir()) == ["c.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


TRICKY_TEXTS = ['", "instruction": "x', '", "output": "y', '\\", "output": "', "\\", '"', "\u2028\u2029\x85\r\x00",
                "𠮷🍣", "", "ok"]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_a_record_line_holds_exactly_the_shard_line_and_its_prompt(text: str) -> None:
    record = {"instruction": "問" + text, "input": text, "output": text + "答"}
    head = {"index": text or "0", "category": "open_qa", "source": "s", "source_index": text, "chars": [1, 2, 3]}
    line = record_line(head, shard_line(record))
    assert json.loads(line) == {**head, **record}
    assert prompt_bytes(shard_line(record)) == json.dumps(
        {"instruction": record["instruction"], "input": record["input"]},
        ensure_ascii=False).encode("utf-8")[:-2]  # up to the input's closing quote


@pytest.mark.parametrize("text", [*TRICKY_TEXTS, ',"category":"x', ',"chars":[1]', '{"index":'])
def test_raw_and_merged_record_lines_are_the_heads_and_shard_line_written_by_copying_bytes(text: str) -> None:
    record = {"index": text or "0", "category": "summarization", "instruction": "問" + text, "input": text,
              "output": text + "答"}
    chars = [len(record["instruction"]), len(text), len(record["output"])]
    line, head, output = raw_record_line(record)
    assert line == record_line({"source_index": record["index"], "category": "summarization", "chars": chars},
                                    shard_line(record))
    assert line[head:] == b", " + shard_line(record)[1:]
    assert line[head:output] == b", " + prompt_bytes(shard_line(record))[1:] + b'"'
    assert merged_head_start(12, orjson.dumps("s-" + text)) + line[1:] == record_line(
        {"index": "12", "source": "s-" + text, "source_index": record["index"], "category": "summarization",
         "chars": chars}, shard_line(record))


def test_prompts_are_read_back_by_offset(tmp_path: Path) -> None:
    records = [{"instruction": "問" + text, "input": text, "output": text + "答"} for text in TRICKY_TEXTS]
    heads = [{"index": str(n), "source_index": text} for n, text in enumerate(TRICKY_TEXTS)]
    lines = [record_line(head, shard_line(record)) for head, record in zip(heads, records, strict=True)]
    starts = [sum(map(len, lines[:n])) for n in range(len(lines))]
    merged = tmp_path / "merged.jsonl"
    merged.write_bytes(b"".join(lines))
    assert read_prompts(merged, [starts[2], starts[0], starts[2]]) == \
        [prompt_bytes(shard_line(records[n])) for n in (2, 0, 2)]


def reference_shard_line(record: dict) -> bytes:
    return (json.dumps({"instruction": record["instruction"], "input": record["input"], "output": record["output"]},
                       ensure_ascii=False) + "\n").encode("utf-8")


def test_shard_lines_equal_the_reference_for_every_code_point() -> None:
    """shard_line encodes text with orjson: byte-identical to json.dumps(ensure_ascii=False) for every character
    (lone surrogates cannot reach it: validation refuses them)."""
    characters = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    for start in range(0, len(characters), 4096):
        text = "".join(characters[start:start + 4096])
        record = {"instruction": text, "input": text[::-1], "output": text[:7]}
        assert shard_line(record) == reference_shard_line(record), hex(ord(text[0]))
    for character in characters:  # and one at a time, so no neighbour could hide a difference
        assert shard_line({"instruction": character, "input": "", "output": "x"}) == reference_shard_line(
            {"instruction": character, "input": "", "output": "x"})


def test_durable_hands_bytes_to_the_disk_while_writing_and_syncs_at_the_end(tmp_path: Path, monkeypatch) -> None:
    """The flush-behind thread calls fdatasync while the with block writes; fsync comes once, after the last byte
    (a failed write syncs nothing); the thread is gone either way."""
    monkeypatch.setattr(jsonl, "FLUSH_SECONDS", 0.01)
    calls: list[tuple[str, int]] = []
    def recorded(name: str, real: Callable[[int], None]) -> Callable[[int], None]:
        def call(fd: int) -> None:
            calls.append((name, os.fstat(fd).st_size))
            real(fd)
        return call

    monkeypatch.setattr(os, "fdatasync", recorded("fdatasync", os.fdatasync))
    monkeypatch.setattr(os, "fsync", recorded("fsync", os.fsync))
    path = tmp_path / "out.jsonl"
    with path.open("wb") as stream, durable(stream):
        for _ in range(20):
            stream.write(b"x" * 4096)
            stream.flush()
            time.sleep(0.01)
    assert path.read_bytes() == b"x" * 4096 * 20
    assert calls[-1] == ("fsync", 4096 * 20)
    assert [name for name, _ in calls[:-1]] == ["fdatasync"] * (len(calls) - 1) and len(calls) > 2
    assert not [thread for thread in threading.enumerate() if thread.name == "flush-behind"]

    calls.clear()
    with pytest.raises(RuntimeError), (tmp_path / "failed.jsonl").open("wb") as stream, durable(stream):
        stream.write(b"partial")
        raise RuntimeError("the stage failed")
    assert [name for name, _ in calls if name == "fsync"] == []
    assert not [thread for thread in threading.enumerate() if thread.name == "flush-behind"]


def test_write_behind_writes_every_block_in_order_and_raises_a_failed_write_at_the_end(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """Blocks reach the stream in submission order, more of them than it queues; a write that fails is raised when
    the with block ends (or by a later write), and the writer thread is gone either way."""
    blocks = [bytes([n]) * (n + 1) for n in range(3 * jsonl.WRITES_BEHIND)]
    path = tmp_path / "out"
    with path.open("wb") as stream, write_behind(stream) as writer:
        for block in blocks:
            writer.write(block)
    assert path.read_bytes() == b"".join(blocks)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("write-behind")]

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"), write_behind(Full()) as writer:  # type: ignore[arg-type]
        writer.write(b"x")
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("write-behind")]


_ROW_VALUES = st.one_of(st.text(max_size=8), st.integers(-10**12, 10**12), st.lists(st.integers(0, 9), max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2))


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda key: key != "indices"),
                                               _ROW_VALUES, max_size=3),
                               st.none() | st.lists(st.lists(st.integers(0, 2**40), max_size=4), max_size=4)),
                     max_size=4))
def test_json_rows_are_written_a_chunk_at_a_time_as_the_whole_table_would_be(tmp_path_factory, rows) -> None:
    """write_json_rows() gives write_json()'s bytes, an IntegerChunks last value written chunk by chunk (empty
    chunks, empty lists, empty rows and an empty table included)."""
    work = tmp_path_factory.mktemp("rows")
    whole = [{**row, "indices": [value for chunk in chunks for value in chunk]} if chunks is not None else row
             for row, chunks in rows]

    def arrays(chunks: list[list[int]]) -> IntegerChunks:
        return IntegerChunks(lambda: [np.array(chunk, dtype=np.int64) for chunk in chunks])

    streamed = [{**row, "indices": arrays(chunks)} if chunks is not None else row for row, chunks in rows]
    write_json(work / "whole.json", whole)
    write_json_rows(work / "rows.json", streamed)
    assert (work / "rows.json").read_bytes() == (work / "whole.json").read_bytes()
    assert json.loads((work / "rows.json").read_bytes()) == whole
