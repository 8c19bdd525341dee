"""Laying out and cutting shards: shard lines sliced out of record lines, written and hashed behind the cutting."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from src.core.errors import DatasetError
from src.records.lines import shard_line
from src.sharding.writer import ShardFiles, cut_shard_lines
from tests.records_data import record_line


def test_shard_lines_are_cut_from_a_block_of_record_lines() -> None:
    texts = ["", "富士山", 'quote " and backslash \\', "line separator \u2028", "emoji 🗻 and NUL \x00"]
    records = [{"instruction": "問" + text, "input": text, "output": text + "答"} for text in texts]
    heads = [{"index": str(n), "source_index": text} for n, text in enumerate(texts)]
    lines = [record_line(head, shard_line(record)) for head, record in zip(heads, records, strict=True)]
    ends = np.cumsum([len(line) for line in lines])
    starts = ends - [len(line) for line in lines]
    heads_length = np.array([len(line) - len(shard_line(record)) - 1 for line, record in zip(lines, records,
                                                                                               strict=True)])
    block = bytearray(b"".join(lines))
    assert cut_shard_lines(block, (starts + heads_length)[1:], ends[1:]) == b"".join(map(shard_line, records[1:]))


def test_shard_files_are_written_in_order_and_hashed(tmp_path: Path) -> None:
    paths = [tmp_path / f"x-{k}_of_2.jsonl" for k in (1, 2)]
    with ShardFiles(paths) as files:
        for number, data in ((0, b"a\n"), (0, b"bc\n"), (1, b"d\n")):
            files.write(number, data)
        md5s = files.md5s()
    assert [path.read_bytes() for path in paths] == [b"a\nbc\n", b"d\n"]
    assert md5s == [hashlib.md5(path.read_bytes()).hexdigest() for path in paths] and files.bytes == [5, 2]


def test_a_shard_changed_behind_the_writer_is_refused_not_hashed_as_written(tmp_path: Path) -> None:
    """Each shard file must hold what was written when it is closed: a file that something else truncated or
    appended to stops the split with an error rather than a card whose md5 is not the file's."""
    shard = tmp_path / "x-1_of_1.jsonl"
    with pytest.raises(DatasetError, match=re.escape("x-1_of_1.jsonl: changed while the split wrote it; run the split "
                                                     "again once nothing else writes to its directory")):
        with ShardFiles([shard]) as files:
            files.write(0, b"abc\n")
            files._writer.finish()  # the writer thread has written it (and the file is flushed, below)
            assert files._open is not None
            files._open[1].flush()
            os.truncate(shard, 2)  # something else truncates it
            files.md5s()
