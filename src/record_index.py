"""The merged file's record index (data/merged/records.npy): one fixed-size row per merged record, in merged order.

A row holds what the split needs of a record besides its text: where its line starts in the merged file and where
its shard fields start in that line, its category, the characters of its instruction, input and output, and the
digest of its instruction and input (src/seen.py digest(), which the merge computes for its duplicate count). The
merge writes it beside the merged file, so the split cuts shard lines, counts statistics and groups prompts with
numpy over whole chunks, with no parsing or hashing per record. It is a plain .npy file (numpy.load reads it).
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Self

import numpy as np

from .errors import DatasetError
from .jsonl import atomic_file

ROW = np.dtype([
    ("offset", "<u8"),  # byte offset of the record line in the merged file
    ("head", "<u4"),  # bytes of the line before its shard fields (the ", " ahead of "instruction")
    ("category", "u1"),  # src/schema.py CATEGORY_CODES
    ("chars", "<u4", (3,)),  # characters of instruction, input, output
    ("prompt", "<u8", (2,)),  # digest of instruction and input, as two 64-bit words
])


class RecordIndexWriter:
    """Rows appended a chunk at a time to a temporary file, then written as one .npy file (atomically) when its with
    block ends without an error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows = tempfile.TemporaryFile()  # noqa: SIM115 -- closed when the with block ends
        self._position = 0
        self.count = 0

    def add(self, lines: Sequence[bytes], shard_lines: Sequence[bytes], categories: Sequence[int],
            chars: Sequence[Sequence[int]], prompts: Sequence[bytes]) -> None:
        """Index the next record ``lines`` (record lines, src/jsonl.py), given their shard lines, category codes,
        characters per text field and prompt digests."""
        rows = np.empty(len(lines), dtype=ROW)
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        rows["offset"] = self._position + np.cumsum(lengths) - lengths
        # A record line is its head less "}", then ", ", then its shard line less "{".
        rows["head"] = lengths - np.fromiter(map(len, shard_lines), dtype=np.int64, count=len(lines)) - 1
        rows["category"] = categories
        rows["chars"] = np.array(chars, dtype=np.uint32).reshape(-1, 3)
        rows["prompt"] = np.frombuffer(b"".join(prompts), dtype="<u8").reshape(-1, 2)
        rows.tofile(self._rows)
        self._position += int(lengths.sum())
        self.count += len(lines)

    def __enter__(self) -> Self:
        return self

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


class RecordIndex:
    """A record index read a range or a selection of rows at a time (never whole: memory stays flat)."""

    def __init__(self, path: Path) -> None:
        self._stream: BinaryIO = path.open("rb")
        try:
            np.lib.format.read_magic(self._stream)
            shape, _, dtype = np.lib.format.read_array_header_1_0(self._stream)
        except (ValueError, OSError):
            self._stream.close()
            raise DatasetError(f"{path}: not a record index; run the merge stage again (dvc repro -f merge)") from None
        if dtype != ROW or len(shape) != 1:
            self._stream.close()
            raise DatasetError(f"{path}: a record index of another layout; run the merge stage again "
                               "(dvc repro -f merge)")
        self.path = path
        self.records = int(shape[0])
        self._data_start = self._stream.tell()

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1."""
        self._stream.seek(self._data_start + start * ROW.itemsize)
        rows = np.fromfile(self._stream, dtype=ROW, count=stop - start)
        if len(rows) != stop - start:
            raise DatasetError(f"{self.path}: holds fewer rows than its header says; run the merge stage again "
                               "(dvc repro -f merge)")
        return rows

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """All rows, ``size`` at a time."""
        for start in range(0, self.records, size):
            yield self.rows(start, min(start + size, self.records))

    def select(self, records: Sequence[int]) -> np.ndarray:
        """The rows of ``records`` (merged indices), in that order."""
        rows = np.empty(len(records), dtype=ROW)
        for at, record in enumerate(records):
            rows[at] = self.rows(record, record + 1)[0]
        return rows

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
