"""Output files: written atomically (a temporary renamed into place, a directory swapped whole), flushed to disk
behind the writes, and JSON documents and tables in one byte format."""
from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from src.core.errors import DatasetError

FLUSH_SECONDS = 0.5  # how often FlushBehind hands written bytes to the disk
WRITES_BEHIND = 2  # blocks a WriteBehind holds at most (bounds memory)


class FlushBehind:
    """fdatasync()s a stream every FLUSH_SECONDS from a second thread while it is written, so the final fsync waits
    only for the last few writes (for a 1.1 GB file, an fsync at the end alone waited about 3 s)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._flush, name="flush-behind", daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        while not self._done.wait(FLUSH_SECONDS):
            os.fdatasync(self._stream.fileno())

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def sync(self) -> None:
        """Stop, then wait until the whole file is on the disk."""
        self.stop()
        self._stream.flush()
        os.fsync(self._stream.fileno())


class WriteBehind:
    """Calls ``write`` on a second thread, in order, at most WRITES_BEHIND calls behind: a file write releases the
    GIL, so it overlaps the making of the next block."""

    def __init__(self, write: Callable[..., object]) -> None:
        self._write = write
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        self._queued: deque[Future[object]] = deque()

    def write(self, *args: Any) -> None:
        self._queued.append(self._thread.submit(self._write, *args))
        while len(self._queued) > WRITES_BEHIND:
            self._queued.popleft().result()

    def finish(self) -> None:
        """Wait for every write, raising the first failure."""
        try:
            while self._queued:
                self._queued.popleft().result()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Stop after the write under way, without waiting for the others."""
        self._thread.shutdown(cancel_futures=True)


@contextmanager
def write_behind(stream: BinaryIO) -> Iterator[WriteBehind]:
    """A WriteBehind of ``stream``, every write done (or raised) when the with block ends."""
    writer = WriteBehind(stream.write)
    try:
        yield writer
    except BaseException:
        writer.abandon()
        raise
    writer.finish()


@contextmanager
def durable(stream: BinaryIO) -> Iterator[BinaryIO]:
    """``stream`` flushed behind while the with block writes it, and on the disk once it ends without an error."""
    flusher = FlushBehind(stream)
    try:
        yield stream
    except BaseException:
        flusher.stop()
        raise
    flusher.sync()


def write_durable(path: Path, data: bytes) -> None:
    with path.open("wb") as stream, durable(stream):
        stream.write(data)


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A name for a temporary beside ``path`` (stale ones swept first), removed if the with block fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed earlier run
        _remove(stale)
    temporary = _temporary_name(path)
    try:
        yield temporary
    except BaseException as error:
        _remove(temporary)
        if isinstance(error, OSError) and error.filename is None:  # from writing, flushing or syncing the output
            raise DatasetError(f"{path}: cannot write ({error.strerror or error}); free some disk space or check "
                               "the device, then run the stage again") from None
        raise


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` through a durable temporary renamed into place: a failed or killed run (or a power loss)
    leaves the old file or none, never a partial one."""
    with _temporary_beside(path) as temporary:
        with temporary.open("xb") as stream, durable(stream):
            yield stream
        os.replace(temporary, path)


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill a temporary sibling directory (its files written durably by the caller), swapped in for ``path``."""
    with _temporary_beside(path) as temporary:
        temporary.mkdir()
        yield temporary
        if not path.exists():
            os.replace(temporary, path)
        elif _exchange(temporary, path):
            shutil.rmtree(temporary)  # now the old directory
        else:
            # Without an atomic exchange, a kill between the renames leaves the output absent (never partial), and
            # the old directory, under a temporary name, is swept on the next run.
            old = _temporary_name(path)
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a kernel or filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(second))


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically: the bytes of json.dumps(indent=2, ensure_ascii=False), from the faster orjson."""
    with atomic_file(path) as stream:
        stream.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


@dataclass(frozen=True)
class IntegerChunks:
    """A JSON list of integers that write_json_rows() writes a chunk at a time, as ``chunks()`` yields them."""

    chunks: Callable[[], Iterable[np.ndarray]]


def write_json_rows(path: Path, rows: Iterable[Mapping[str, object]]) -> None:
    """write_json() of a list of objects, a row at a time; a row's last value may be an IntegerChunks, so that a
    long list of integers is never whole in memory."""
    with atomic_file(path) as stream:
        opening = b"[\n"
        for row in rows:
            stream.write(opening)
            opening = b",\n"
            last_key, last = list(row.items())[-1] if row else ("", None)
            if not isinstance(last, IntegerChunks):
                stream.write(_row_text(row))
                continue
            stream.write(_row_text({**row, last_key: []})[:-len(b"]\n  }")])  # up to the empty list's "["
            separator = b"\n"
            for chunk in last.chunks():
                if len(chunk):
                    stream.write(separator + b",\n".join([b"      %d" % value for value in chunk.tolist()]))
                    separator = b",\n"
            stream.write((b"]" if separator == b"\n" else b"\n    ]") + b"\n  }")
        stream.write(b"[]\n" if opening == b"[\n" else b"\n]\n")


def _row_text(row: Mapping[str, object]) -> bytes:
    """A row as write_json() writes it inside a list (a JSON string holds no newline: every newline is indenting)."""
    return b"  " + orjson.dumps(row, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n  ")
