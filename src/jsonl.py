"""The shard and record line formats, line-oriented reading, and atomic output files.

A shard line is exactly ``json.dumps({"instruction", "input", "output"}, ensure_ascii=False)``
with the default separators, then ``\\n``, UTF-8 without BOM: the format of shards already
published, so that a shard can be proven byte for byte to be the one a model was trained on.

A record line (data/raw/*.jsonl and the merged file) is the record's head (its other fields) followed by
exactly the fields of its shard line, so later stages cut shard lines out of record lines without parsing or
re-encoding any text; a head is small and parsed with orjson.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

import orjson

SHARD_FIELDS = ("instruction", "input", "output")
# A JSON string never holds an unescaped '"', so the first occurrence of these bytes is the structural one.
_SHARD_FIELDS_START = b', "instruction": '
_OUTPUT_START = b'", "output": "'


def dumps_line(obj: Mapping[str, object]) -> bytes:
    """One JSON Lines line: json.dumps with default separators, ensure_ascii=False, then \\n."""
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def shard_line(record: Mapping[str, str]) -> bytes:
    """The published shard line of a record: its instruction, input and output, in that order.

    orjson encodes a string exactly as json.dumps(ensure_ascii=False) does, character for character (a test
    compares every code point), and about ten times faster; the separators around them are json.dumps's.
    """
    return (b'{"instruction": ' + orjson.dumps(record["instruction"]) + b', "input": ' + orjson.dumps(record["input"])
            + b', "output": ' + orjson.dumps(record["output"]) + b"}\n")


def join_record_line(head: Mapping[str, object], shard: bytes) -> bytes:
    """A record line: ``head`` as a JSON object, with the fields of the shard line ``shard`` appended."""
    return orjson.dumps(head)[:-1] + b", " + shard[1:]


def split_record_line(line: bytes) -> tuple[dict, bytes]:
    """(head, shard line) of a record line."""
    cut = line.index(_SHARD_FIELDS_START)
    return orjson.loads(line[:cut] + b"}"), b"{" + line[cut + 2:]


def prompt_bytes(shard: bytes) -> bytes:
    """The JSON-encoded instruction and input of a shard line: equal bytes if and only if equal texts."""
    return shard[:shard.index(_OUTPUT_START)]


def iter_lines(path: Path) -> Iterator[bytes]:
    """Lines of a file we wrote ourselves, split on \\n only (never on U+2028 and friends)."""
    with path.open("rb") as stream:
        yield from stream


def count_lines(path: Path, chunk_size: int = 1 << 20) -> int:
    """Number of \\n-terminated lines, reading in fixed-size chunks (flat memory)."""
    lines = 0
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            lines += chunk.count(b"\n")
    return lines


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: Path) -> None:
    """Remove temporaries a killed earlier run left beside ``path``."""
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(_temporary_prefix(path) + "*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _mode_after_umask(mode: int) -> int:
    """mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual umask mode."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file in the same directory, renamed into place on success.

    A run that fails or is killed leaves the old file (or none), never a partial one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), _mode_after_umask(0o666))
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: object) -> None:
    """Write a small JSON document (metrics, manifests) atomically, with stable formatting."""
    with atomic_file(path) as stream:
        stream.write((json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill a temporary sibling directory, then swap it in for ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
    try:
        os.chmod(temporary, _mode_after_umask(0o777))
        yield temporary
        if path.exists():
            # Move the old directory aside under a temporary name, so a kill between
            # the two renames leaves it recoverable and it is swept on the next run.
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
            os.replace(path, old / path.name)
            os.replace(temporary, path)
            shutil.rmtree(old)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
