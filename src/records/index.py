"""Record indexes: one fixed-size row (ROW) per record line of a file, in file order, in a plain .npy file beside it.

The raw stage computes the rows as it encodes each record (data/raw/NAME.npy); the merge carries them over to
data/merged/records.npy. So later stages count, cut and group records with numpy, with no parsing or hashing.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.core.errors import DatasetError
from src.output.files import atomic_file

ROW = np.dtype([
    ("offset", "<u8"),  # byte offset of the record line in the file
    ("head", "<u4"),  # bytes of the line before its shard fields (the ", " ahead of "instruction")
    ("category", "u1"),  # src/core/schema.py CATEGORY_CODES
    ("chars", "<u4", (3,)),  # characters of instruction, input, output
    ("prompt", "<u8", (2,)),  # digest of instruction and input (prompt_bytes), as two 64-bit words
    ("line", "<u8", (2,)),  # digest of the shard line, as two 64-bit words
])


def record_digests(line: bytes, head: int, output: int) -> tuple[bytes, bytes]:
    """(prompt, line) digests of a record line whose shard fields start at ``head`` and output field at ``output``:
    sha256 cut to 16 bytes (twice as fast as blake2b with SHA instructions) of line[head:output] and of line[head:],
    the second continuing the first."""
    view = memoryview(line)
    hashed = hashlib.sha256(view[head:output])
    prompt = hashed.digest()[:16]
    hashed.update(view[output:])
    return prompt, hashed.digest()[:16]


def line_lengths(lines: Sequence[bytes]) -> np.ndarray:
    return np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))


def index_rows(lines: Sequence[bytes], heads: Sequence[int], categories: Sequence[int], chars: Sequence[int],
               prompts: Sequence[bytes], shard_digests: Sequence[bytes]) -> np.ndarray:
    """The rows of record ``lines``, with their characters three per record, flat; offsets count from the first."""
    lengths = line_lengths(lines)
    rows = np.empty(len(lines), dtype=ROW)
    rows["offset"] = np.cumsum(lengths) - lengths
    rows["head"] = heads
    rows["category"] = categories
    rows["chars"] = np.array(chars, dtype=np.uint32).reshape(-1, 3)
    rows["prompt"] = np.frombuffer(b"".join(prompts), dtype="<u8").reshape(-1, 2)
    rows["line"] = np.frombuffer(b"".join(shard_digests), dtype="<u8").reshape(-1, 2)
    return rows


def check_block(path: Path, block: bytes | bytearray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray,
                stage: str) -> None:
    """Refuse lines (line i is block[starts[i]:ends[i]]) that are not where ``rows`` say: a file changed without
    its index, which ``stage`` writes."""
    data = np.frombuffer(block, dtype=np.uint8)
    cuts = starts + rows["head"]
    if (np.any(cuts + 1 >= ends) or np.any(data[ends - 1] != ord("\n")) or np.any(data[cuts] != ord(","))
            or np.any(data[cuts + 1] != ord(" "))):
        raise DatasetError(f"{path}: does not match its record index; run the {stage} stage again "
                           f"(dvc repro -f {stage})")


@dataclass(frozen=True)
class IndexedBlock:
    """Consecutive record lines and their rows: line i is block[starts[i]:ends[i]], record first + i."""

    first: int
    block: bytearray
    starts: np.ndarray
    ends: np.ndarray
    rows: np.ndarray


class RecordIndexWriter(AbstractContextManager["RecordIndexWriter"]):
    """Rows appended a chunk at a time to a temporary file, written as one .npy file (atomically) when the with
    block ends without an error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows = tempfile.TemporaryFile()  # noqa: SIM115 -- closed when the with block ends
        self._position = 0
        self.count = 0

    def add(self, rows: np.ndarray, size: int) -> None:
        """Append the rows of the next ``size`` bytes of record lines, their offsets counted from the first."""
        rows["offset"] += self._position
        rows.tofile(self._rows)
        self._position += size
        self.count += len(rows)

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if error_type is None:
                self._rows.seek(0)
                with atomic_file(self.path) as stream:
                    np.lib.format.write_array_header_1_0(stream, {"descr": np.lib.format.dtype_to_descr(ROW),
                                                                  "fortran_order": False, "shape": (self.count,)})
                    shutil.copyfileobj(self._rows, stream)
        finally:
            self._rows.close()


class RecordIndex(AbstractContextManager["RecordIndex"]):
    """A record index read a range or a selection of rows at a time (memory stays flat); errors tell to run
    ``stage``, which writes it, again."""

    def __init__(self, path: Path, stage: str = "merge") -> None:
        self.path, self._stage = path, stage
        self._again = f"run the {stage} stage again (dvc repro -f {stage})"
        try:
            self._stream = path.open("rb")
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing; {self._again}") from None
        try:
            np.lib.format.read_magic(self._stream)
            shape, _, dtype = np.lib.format.read_array_header_1_0(self._stream)
            problem = "a record index of another layout" if dtype != ROW or len(shape) != 1 else ""
        except (ValueError, OSError):
            problem = "not a record index"
        if problem:
            self._stream.close()
            raise DatasetError(f"{path}: {problem}; {self._again}")
        self.records = int(shape[0])
        self._data_start = self._stream.tell()

    def rows(self, start: int, stop: int) -> np.ndarray:
        self._stream.seek(self._data_start + start * ROW.itemsize)
        data = bytearray((stop - start) * ROW.itemsize)  # readinto: np.fromfile costs a dup() and more per call
        if self._stream.readinto(data) != len(data):
            raise DatasetError(f"{self.path}: holds fewer rows than its header says; {self._again}")
        return np.frombuffer(data, dtype=ROW)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.records, size):
            yield self.rows(start, min(start + size, self.records))

    def blocks(self, lines: Path, size: int) -> Iterator[IndexedBlock]:
        """The record lines of file ``lines``, ``size`` at a time, each block checked (check_block()). A line ends
        where the next starts; the last, at its first newline: a file shorter, or with more lines, is refused."""
        with lines.open("rb") as stream:
            file_size = os.fstat(stream.fileno()).st_size
            for first in range(0, self.records, size):
                stop = min(first + size, self.records)
                last = stop == self.records
                rows = self.rows(first, stop if last else stop + 1)  # the next block's first row ends this block
                bounds = rows["offset"].astype(np.int64)
                if last:
                    bounds = np.append(bounds, file_size)
                rows, start = rows[:stop - first], int(bounds[0])
                block = bytearray(max(int(bounds[-1]) - start, 0))
                stream.seek(start)
                if start > file_size or stream.readinto(block) != len(block):
                    raise DatasetError(f"{lines}: does not match its record index; {self._again}")
                starts, ends = bounds[:-1] - start, bounds[1:] - start
                beyond = 0  # bytes after the file's last line
                if last:
                    ends[-1] = block.find(b"\n", int(starts[-1])) + 1 or len(block)
                    beyond = len(block) - int(ends[-1])
                    del block[ends[-1]:]
                check_block(lines, block, starts, ends, rows, self._stage)
                if beyond:
                    raise DatasetError(f"{lines}: holds more records than its record index; {self._again}")
                yield IndexedBlock(first, block, starts, ends, rows)

    def select(self, records: Sequence[int]) -> np.ndarray:
        rows = np.empty(len(records), dtype=ROW)
        for at, record in enumerate(records):
            rows[at] = self.rows(record, record + 1)[0]
        return rows

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
