"""Record indexes: one fixed-size row per record line, written a chunk at a time, read a range or a selection at a
time; and the digests the raw stage puts in them."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from src.core.errors import DatasetError
from src.records.index import ROW, RecordIndex, RecordIndexWriter, index_rows, record_digests
from src.records.lines import prompt_bytes, raw_record_line, shard_line
from tests.records_data import digest16 as digest
from tests.records_data import record_line


def fields(n: int) -> dict:
    return {"instruction": f"問{n}", "input": "文" * n, "output": "答"}


def write_index(path: Path, records: int, chunk: int) -> list[bytes]:
    lines = [record_line({"index": str(n), "chars": [2, n, 1]}, shard_line(fields(n))) for n in range(records)]
    with RecordIndexWriter(path) as index:
        for start in range(0, records, chunk):
            numbers = range(start, min(start + chunk, records))
            part = lines[start:start + chunk]
            heads = [len(line) - len(shard_line(fields(n))) - 1 for line, n in zip(part, numbers, strict=True)]
            rows = index_rows(part, heads,
                              [n % 8 for n in numbers], [count for n in numbers for count in (2, n, 1)],
                              [digest(str(n).encode()) for n in numbers], [digest(str(-n).encode()) for n in numbers])
            index.add(rows, sum(map(len, part)))
    return lines


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_rows_are_written_in_chunks_and_read_back_by_range_and_selection(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "records.npy"
    lines = write_index(path, 7, chunk)
    whole = np.load(path)  # a plain .npy file
    assert whole.dtype == ROW and len(whole) == 7
    assert whole["offset"].tolist() == [sum(map(len, lines[:n])) for n in range(7)]
    assert [bytes(line[head:head + 17]) for line, head in zip(lines, whole["head"].tolist(), strict=True)] == \
        [b', "instruction": '] * 7
    assert whole["category"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert whole["chars"][:, 1].tolist() == list(range(7))
    assert [row.tobytes() for row in whole["prompt"]] == [digest(str(n).encode()) for n in range(7)]
    assert [row.tobytes() for row in whole["line"]] == [digest(str(-n).encode()) for n in range(7)]
    with RecordIndex(path) as index:
        assert index.records == 7
        assert index.rows(2, 5).tobytes() == whole[2:5].tobytes()
        assert [len(rows) for rows in index.chunks(3)] == [3, 3, 1]
        assert index.select([6, 0, 3]).tobytes() == whole[[6, 0, 3]].tobytes()


def test_a_failed_merge_writes_no_index(tmp_path: Path) -> None:
    path = tmp_path / "records.npy"
    with pytest.raises(RuntimeError), RecordIndexWriter(path) as index:
        index.add(index_rows([b"x"], [0], [0], [0, 0, 0], [bytes(16)], [bytes(16)]), 1)
        raise RuntimeError("the merge failed")
    assert list(tmp_path.iterdir()) == []


def test_an_index_shorter_than_its_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.npy"
    write_index(path, 5, 5)
    path.write_bytes(path.read_bytes()[:-ROW.itemsize])
    with RecordIndex(path) as index, pytest.raises(DatasetError) as error:
        index.rows(0, 5)
    assert str(error.value) == (f"{path}: holds fewer rows than its header says; run the merge stage again "
                                "(dvc repro -f merge)")


def test_digests_are_of_the_prompt_and_of_the_shard_fields_each_hashed_once() -> None:
    record = {"index": "1", "category": "open_qa", **fields(3)}
    line = record_line({"index": "1"}, shard_line(record))
    head = line.index(b', "instruction": ')
    output = line.index(b', "output": ')
    prompt, shard = record_digests(line, head, output)
    assert prompt == hashlib.sha256(b", " + prompt_bytes(shard_line(record))[1:] + b'"').digest()[:16]
    assert shard == hashlib.sha256(b", " + shard_line(record)[1:]).digest()[:16]
    other = record_line({"index": "2", "source": "s"}, shard_line(record))  # another head, the same digests
    assert record_digests(other, other.index(b', "instruction": '), other.index(b', "output": ')) == (prompt, shard)


def test_prompts_that_a_separator_would_confuse_have_distinct_digests() -> None:
    """Instruction and input were once joined with "\x00", so these were one key and merging dropped a distinct
    record; the digest is of the prompt's JSON encoding."""
    pairs = [(("問\x00", "x"), ("問", "\x00x")), (("a", ""), ("", "a")), (("ab", ""), ("a", "b"))]
    for first, second in pairs:
        digests = [record_digests(*raw_record_line({"index": "0", "category": "open_qa", "instruction": instruction,
                                                     "input": input_, "output": "o"}))
                   for instruction, input_ in (first, second)]
        assert digests[0][0] != digests[1][0] and digests[0][1] != digests[1][1], (first, second)
