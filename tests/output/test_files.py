"""Atomic, durable output files and JSON tables (src/output/files.py)."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.output import files
from src.output.files import (
    IntegerChunks,
    atomic_directory,
    atomic_file,
    durable,
    write_behind,
    write_json,
    write_json_rows,
)


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_ROW_VALUES = st.one_of(st.text(max_size=8), st.integers(-10**12, 10**12), st.lists(st.integers(0, 9), max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2))


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


def test_durable_hands_bytes_to_the_disk_while_writing_and_syncs_at_the_end(tmp_path: Path, monkeypatch) -> None:
    """The flush-behind thread calls fdatasync while the with block writes; fsync comes once, after the last byte
    (a failed write syncs nothing); the thread is gone either way."""
    monkeypatch.setattr(files, "FLUSH_SECONDS", 0.01)
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
    blocks = [bytes([n]) * (n + 1) for n in range(3 * files.WRITES_BEHIND)]
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
