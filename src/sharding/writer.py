"""Laying out the merged records in the strategy's order and cutting them into shard files.

Blocks of record lines are checked against the record index (src/records/index.py), which says where each line's
shard fields start: a shard line is one slice of its record line, so nothing is parsed.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from queue import SimpleQueue
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
HASH_READ_BYTES = 1 << 20  # read back and hashed at a time
CATEGORY_CHUNK_ROWS = 1 << 16  # record index rows read at a time for their categories (stratified)


def shard_path_parts(shard_path: str) -> tuple[Path, str]:
    """(directory, file name pattern) of SHARD_PATH; the name holds {shard} once and the directory none."""
    path = Path(shard_path)
    if path.name.count(SHARD_PLACEHOLDER) != 1 or "{" in str(path.parent):
        raise DatasetError(f"{shard_path}: the shard path must hold {SHARD_PLACEHOLDER} once, in the file name")
    return path.parent, path.name


@dataclass(frozen=True)
class Chunk:
    """Consecutive laid-out records: line i is block[starts[i]:ends[i]]; their merged indices and index rows."""

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
    """Records of one shard (0-based), in laid-out order: merged indices, index rows and shard lines."""

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
            lengths = line_lengths(lines)
            ends = np.cumsum(lengths)
            block = bytearray(b"".join(lines))
            starts = ends - lengths
            check_block(merged, block, starts, ends, rows, "merge")
            yield Chunk(block, starts, ends, records, rows)


def cut_shard_lines(block: bytearray, cuts: np.ndarray, ends: np.ndarray) -> bytes:
    """The shard lines of the record lines in ``block`` whose shard fields start at ``cuts`` (the ", " before them)
    and which end at ``ends``. The space of each ", " becomes the shard line's "{", in place, so that each shard
    line is one slice of the block and its text is copied once."""
    np.frombuffer(block, dtype=np.uint8)[cuts + 1] = ord("{")
    with memoryview(block) as view:
        return b"".join([view[cut + 1:end] for cut, end in zip(cuts.tolist(), ends.tolist(), strict=True)])


def shard_pieces(chunks: Iterable[Chunk], split: SplitParams) -> Iterator[ShardPiece]:
    """The laid-out ``chunks`` cut where the shards of ``split`` start and stop; records between shards
    (allow_gaps) are passed over."""
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
    """The shard files of ``paths``, written in shard order on one thread behind the cutting, each flushed to disk as
    it is written and checked to hold what was written when it is closed. Another thread hashes them, reading back
    from the page cache what was written: it lags as far as it needs (md5 of 1M records' shards takes 1.5 s, more
    than the cutting) without holding the data in memory, so the hashing also overlaps what follows the writing."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = paths
        self.bytes = [0] * len(paths)
        self._open: tuple[int, BinaryIO, FlushBehind] | None = None  # the file being written
        self._writer = WriteBehind(self._write)
        self._written: SimpleQueue[tuple[int, int] | None] = SimpleQueue()  # (shard, bytes) written; None: no more
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="md5-read-back")
        self._md5s = self._hasher.submit(self._hash_written)

    def write(self, number: int, data: bytes) -> None:
        self.bytes[number] += len(data)
        self._writer.write(number, data)

    def _write(self, number: int, data: bytes) -> None:
        if self._open is None or self._open[0] != number:
            self._close_file(synced=True)
            stream = self._paths[number].open("wb")
            self._open = number, stream, FlushBehind(stream)
        self._open[1].write(data)
        self._open[1].flush()
        self._written.put((number, len(data)))

    def _hash_written(self) -> list[str]:
        md5 = [hashlib.md5() for _ in self._paths]
        buffer = memoryview(bytearray(HASH_READ_BYTES))
        reading: tuple[int, BufferedReader] | None = None  # the file being read back
        try:
            while (written := self._written.get()) is not None:
                number, left = written
                if reading is None or reading[0] != number:
                    if reading is not None:
                        reading[1].close()
                    reading = number, self._paths[number].open("rb")
                while left:
                    if not (got := reading[1].readinto(buffer[:min(left, len(buffer))])):
                        raise self._changed(number)
                    md5[number].update(buffer[:got])
                    left -= got
        finally:
            if reading is not None:
                reading[1].close()
        return [hashed.hexdigest() for hashed in md5]

    def _changed(self, number: int) -> DatasetError:
        return DatasetError(f"{self._paths[number]}: changed while the split wrote it; run the split again once "
                            "nothing else writes to its directory")

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
                raise self._changed(number)
        finally:
            stream.close()

    def close(self) -> None:
        """Wait for every write (raising the first failure) and close the files, on the disk; the hashing goes on."""
        try:
            self._writer.finish()
            self._close_file(synced=True)
        finally:
            self._written.put(None)

    def md5s(self) -> list[str]:
        """The files' md5s, in order, once every write is done and read back."""
        self.close()
        try:
            return self._md5s.result()
        finally:
            self._hasher.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        if error_type is not None:  # the run is failing already: stop after the writes under way
            self._writer.abandon()
            self._close_file(synced=False)
            self._written.put(None)
            self._hasher.shutdown()
