"""Laying out the merged records in the strategy's order and cutting them into shard files.

The records come a block at a time, each block checked against the record index (src/records/index.py), which
says where every record line and its shard fields start: a shard line is one slice of its record line, so nothing
is parsed. Shard files are written on one thread and hashed on another, both behind the cutting (a file write and
md5 release the GIL).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

import numpy as np

from src.core.config import SplitParams
from src.core.errors import DatasetError
from src.core.schema import CATEGORIES
from src.output.files import FlushBehind, WriteBehind
from src.records.index import RecordIndex, check_block, line_lengths
from src.sharding.strategies import shuffled_order, stratified_order

SHARD_PLACEHOLDER = "{shard}"
CHUNK_RECORDS = 4096  # records read, cut and written at a time
CATEGORY_CHUNK_ROWS = 1 << 16  # record index rows read at a time for their categories (stratified)


def shard_path_parts(shard_path: str) -> tuple[Path, str]:
    """(directory, file name pattern) of SHARD_PATH; the name holds {shard} once and the directory none."""
    path = Path(shard_path)
    if path.name.count(SHARD_PLACEHOLDER) != 1 or "{" in str(path.parent):
        raise DatasetError(f"{shard_path}: the shard path must hold {SHARD_PLACEHOLDER} once, in the file name")
    return path.parent, path.name


@dataclass(frozen=True)
class Chunk:
    """Consecutive records of the laid-out order: their record lines, one after another in ``block`` (line i is
    block[starts[i]:ends[i]]), their merged indices and their record index rows."""

    block: bytearray
    starts: np.ndarray
    ends: np.ndarray
    records: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.records)

    @property
    def nbytes(self) -> int:
        return len(self.block)


@dataclass(frozen=True)
class ShardPiece:
    """Records of one shard (0-based ``shard``), in laid-out order: their merged indices, record index rows and shard
    lines, one after another."""

    shard: int
    records: np.ndarray
    rows: np.ndarray
    lines: bytes


def laid_out(merged: Path, index: RecordIndex, split: SplitParams) -> Iterator[Chunk]:
    """The merged records in the order of split.strategy, CHUNK_RECORDS at a time."""
    split.check_records(index.records)
    if split.strategy == "contiguous":
        return (Chunk(part.block, part.starts, part.ends, np.arange(part.first, part.first + len(part.rows)),
                      part.rows) for part in index.blocks(merged, CHUNK_RECORDS))
    categories = np.concatenate([np.zeros(0, dtype=np.uint8),
                                 *(rows["category"] for rows in index.chunks(CATEGORY_CHUNK_ROWS))])
    if split.strategy == "stratified":
        order = stratified_order(categories, [(shard.start, shard.stop) for shard in split.shards], len(CATEGORIES))
    else:
        order = shuffled_order(index.records, split.seed)
    return _in_order(merged, index, order)


def _in_order(merged: Path, index: RecordIndex, order: np.ndarray) -> Iterator[Chunk]:
    with merged.open("rb") as stream:
        for start in range(0, len(order), CHUNK_RECORDS):
            records = order[start:start + CHUNK_RECORDS]
            rows = index.select(records.tolist())
            lines = []
            for offset in rows["offset"].tolist():
                stream.seek(offset)
                lines.append(stream.readline())
            ends = np.cumsum(line_lengths(lines))
            block = bytearray(b"".join(lines))
            starts = ends - line_lengths(lines)
            check_block(merged, block, starts, ends, rows, "merge")
            yield Chunk(block, starts, ends, records, rows)


def cut_shard_lines(block: bytearray, cuts: np.ndarray, ends: np.ndarray) -> bytes:
    """The shard lines, one after another, of the record lines in ``block`` whose shard fields start at ``cuts``
    (the ", " before them) and which end at ``ends``.

    Rewrites ``block`` in place: the space of each ", " becomes the shard line's "{", so that each shard line is
    one slice of the block and its text is copied once.
    """
    np.frombuffer(block, dtype=np.uint8)[cuts + 1] = ord("{")
    with memoryview(block) as view:
        return b"".join([view[cut + 1:end] for cut, end in zip(cuts.tolist(), ends.tolist(), strict=True)])


def shard_pieces(chunks: Iterable[Chunk], split: SplitParams) -> Iterator[ShardPiece]:
    """The laid-out ``chunks`` cut where the shards of ``split`` start and stop (ordered, disjoint ranges), so that
    records between shards (allow_gaps) are passed over."""
    position = number = 0
    for chunk in chunks:
        end = position + len(chunk.records)
        while number < len(split.shards) and split.shards[number].start < end:
            shard = split.shards[number]
            first, last = max(shard.start, position) - position, min(shard.stop, end) - position
            rows = chunk.rows[first:last]
            lines = cut_shard_lines(chunk.block, chunk.starts[first:last] + rows["head"], chunk.ends[first:last])
            yield ShardPiece(number, chunk.records[first:last], rows, lines)
            if shard.stop > end:
                break
            number += 1
        position = end


class ShardFiles:
    """The shard files of ``paths``, written in shard order on one thread and hashed on another, both behind the
    cutting (at a million records writing and md5 take a second or two each); each file flushed to disk as it is
    written, and checked to hold what was written when it is closed."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = paths
        self.bytes = [0] * len(paths)
        self._md5 = [hashlib.md5() for _ in paths]
        self._open: tuple[int, BinaryIO, FlushBehind] | None = None  # the file being written
        self._writer = WriteBehind(self._write)
        self._hasher = WriteBehind(lambda number, data: self._md5[number].update(data))

    def write(self, number: int, data: bytes) -> None:
        self.bytes[number] += len(data)
        self._writer.write(number, data)
        self._hasher.write(number, data)

    def _write(self, number: int, data: bytes) -> None:
        if self._open is None or self._open[0] != number:
            self._close_file(synced=True)
            stream = self._paths[number].open("wb")
            self._open = number, stream, FlushBehind(stream)
        self._open[1].write(data)

    def _close_file(self, synced: bool) -> None:
        if self._open is None:
            return
        number, stream, flusher = self._open
        self._open = None
        try:
            if not synced:
                flusher.stop()
                return
            flusher.sync()
            if os.fstat(stream.fileno()).st_size != self.bytes[number]:
                raise DatasetError(f"{self._paths[number]}: changed while the split wrote it; run the split again "
                                   "once nothing else writes to its directory")
        finally:
            stream.close()

    def md5s(self) -> list[str]:
        """Wait for every write and hash (raising the first failure), close the files; their md5s, in order."""
        self._writer.finish()
        self._close_file(synced=True)
        self._hasher.finish()
        return [md5.hexdigest() for md5 in self._md5]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        if error_type is not None:  # the run is failing already: stop after the writes under way
            self._writer.abandon()
            self._hasher.abandon()
            self._close_file(synced=False)
