"""Validated records encoded as raw record lines and record index rows, a batch at a time.

A JSON Lines file is cut here into slices of whole lines, each read, validated and encoded on a worker process; taken
in file order, they give the output and the first problem of reading the file line by line in one process.
"""
from __future__ import annotations

import ctypes
import gc
import io
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from src.core.errors import DatasetError
from src.core.schema import CATEGORY_CODES
from src.records.index import index_rows, record_digests
from src.records.lines import raw_record_line
from src.sources.readers import Digest, JsonLines, index_digest, validate_record

BATCH_BYTES = 1 << 20  # JSON Lines handed to a worker at a time
BATCH_RECORDS = 4096  # records of other sources encoded at a time
BATCHES_AHEAD = 2  # batches per worker queued ahead of the one being written
M_ARENA_MAX = -8  # glibc's mallopt() parameter
MAX_WORKERS = 3  # each adds about 24 MiB (measured); beyond 3, the stage's own reading and writing bound the speed


@dataclass(frozen=True)
class EncodedBatch:
    """Records encoded: their raw lines joined, index rows and index_digest()s joined (b"" for a numbered source);
    ``error``: the problem that ended the batch early; ``blank_line``: the first blank line after its last record."""

    block: bytes
    rows: np.ndarray
    index_digests: bytes
    error: str | None = None
    blank_line: int = 0

    def __len__(self) -> int:
        return len(self.rows)


def encode_records(records: Sequence[dict]) -> tuple[list[bytes], np.ndarray]:
    """The raw record lines of validated ``records`` and their record index rows."""
    encoded = [raw_record_line(record) for record in records]  # (line, head, output) each
    digests = [record_digests(*line) for line in encoded]  # (prompt, shard) each
    lines = [line for line, _, _ in encoded]
    chars = [len(record[field]) for record in records for field in ("instruction", "input", "output")]
    categories = [CATEGORY_CODES[record["category"]] for record in records]
    return lines, index_rows(lines, [head for _, head, _ in encoded], categories, chars,
                             [prompt for prompt, _ in digests], [shard for _, shard in digests])


def encoded_batches(records: Iterable[dict]) -> Iterator[EncodedBatch]:
    """Validated ``records`` (already checked as a whole), encoded BATCH_RECORDS at a time."""
    records = iter(records)
    while chunk := list(itertools.islice(records, BATCH_RECORDS)):
        lines, rows = encode_records(chunk)
        yield EncodedBatch(b"".join(lines), rows, b"")


@dataclass(frozen=True)
class FileSlice:
    """Whole lines of a file: ``length`` bytes from ``offset``, starting at line ``first_line``; ``identity`` is the
    file's (inode, size, mtime) when it was cut, so a file replaced or edited meanwhile is refused."""

    path: str
    identity: tuple[int, int, int]
    offset: int
    length: int
    first_line: int


def file_identity(status: os.stat_result) -> tuple[int, int, int]:
    return status.st_ino, status.st_size, status.st_mtime_ns


def _check_unchanged(name: str, fd: int, identity: tuple[int, int, int]) -> None:
    if file_identity(os.fstat(fd)) != identity:
        raise DatasetError(f"{name}: the file changed while it was read; run again once nothing writes to it")


def encode_json_lines(name: str, part: FileSlice, renames: Mapping[str, str] | None, number_records: bool,
                      blank_line: int = 0) -> EncodedBatch:
    """The batch of ``part`` of JSON Lines file ``name``, read after ``blank_line`` (JsonLines.blank_line); records
    are numbered by line, which is right wherever no error precedes."""
    with open(part.path, "rb") as file:
        _check_unchanged(name, file.fileno(), part.identity)
        data = os.pread(file.fileno(), part.length, part.offset)
    reader = JsonLines(name, blank_line, records=True)
    records, error = [], None
    lines = io.BytesIO(data).readlines()  # split as file iteration does
    try:
        for number, (where, value) in enumerate(reader.values(lines, part.first_line), part.first_line):
            try:
                records.append(validate_record(value, where, renames, str(number - 1) if number_records else None,
                                               utf8_checked=reader.parsed_strictly))
            except DatasetError:
                reader.recheck(number, lines[number - part.first_line])
                raise
    except DatasetError as problem:
        error = str(problem)
    lines, rows = encode_records(records)
    digests = b"" if number_records else b"".join(index_digest(record["index"]) for record in records)
    return EncodedBatch(b"".join(lines), rows, digests, error, reader.blank_line)


class Workers(ProcessPoolExecutor):
    """Worker processes, one per usable core (at most MAX_WORKERS), all forked at once: before any thread starts
    (fork copies only the calling one), sharing the imports in memory. Leaving the with block drops slices not begun."""

    def __init__(self) -> None:
        self.count = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
        super().__init__(self.count, mp_context=multiprocessing.get_context("fork"))
        # Memory stays flat only if the pages forked stay shared: a garbage collection writes to every object it
        # tracks, so those forked are frozen; and each thread's own malloc arena would keep its freed blocks apart.
        gc.freeze()
        getattr(ctypes.CDLL(None), "mallopt", lambda *_: 0)(M_ARENA_MAX, 1)  # glibc only
        self.submit(os.getpid)  # forks them all now

    def __exit__(self, *exc: object) -> None:
        self.shutdown(cancel_futures=True)


def json_lines_batches(path: Path, stream: BinaryIO, name: str, renames: Mapping[str, str] | None,
                       number_records: bool, workers: Workers, digest: Digest | None = None) -> Iterator[EncodedBatch]:
    """The batches of JSON Lines file ``path`` (open as ``stream``) encoded on ``workers``, in file order; its bytes
    feed ``digest``."""
    identity = file_identity(os.fstat(stream.fileno()))
    pending: deque[tuple[FileSlice, Future[EncodedBatch]]] = deque()
    blank_line = 0  # the first blank line after the last record taken (0: none)

    def oldest() -> EncodedBatch:
        nonlocal blank_line
        part, future = pending.popleft()
        batch = future.result()
        if blank_line:  # the worker read as if no blank line came before: read it again after that line
            batch = encode_json_lines(name, part, renames, number_records, blank_line)
        blank_line = blank_line or batch.blank_line
        return batch

    for part in _cut(str(path), identity, stream, digest):
        pending.append((part, workers.submit(encode_json_lines, name, part, renames, number_records)))
        if len(pending) > BATCHES_AHEAD * workers.count:
            yield oldest()
    while pending:
        yield oldest()
    _check_unchanged(name, stream.fileno(), identity)


def _cut(path: str, identity: tuple[int, int, int], stream: BinaryIO, digest: Digest | None) -> Iterator[FileSlice]:
    """``stream`` cut into slices of whole lines of about BATCH_BYTES: read here only to find the cuts and feed
    ``digest``."""
    start = position = 0
    line = 1
    while chunk := stream.read(BATCH_BYTES):
        if digest is not None:
            digest.update(chunk)
        cut = chunk.rfind(b"\n")
        if cut >= 0:  # else a line longer than the chunk goes on
            end = position + cut + 1
            yield FileSlice(path, identity, start, end - start, line)
            line += chunk.count(b"\n")
            start = end
        position += len(chunk)
    if start < position:  # a last line without its \n
        yield FileSlice(path, identity, start, position - start, line)
