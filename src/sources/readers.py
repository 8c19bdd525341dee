"""Sources read as streams of (location, value), and validated as records of the schema.

A UTF-8 BOM is stripped and CRLF read as LF; anything else wrong is one DatasetError naming the file and the line, or
the record of an array (docs/errors.md).
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, Self

import numpy as np
import orjson

from src.core.errors import DatasetError
from src.core.schema import CATEGORIES, FIELDS
from src.core.spill import PARTITION_RECORDS, SpillPartitions

CHUNK_BYTES = 1 << 20
MAX_RECORD_CHARS = 16 << 20  # an array's record larger than this is reported, not read on (garbage input)
INDEX_CHECK_RECORDS = 1 << 16  # index digests held for the duplicate-index check at a time
INDEX_CHECK_PARTS = 16  # its spill files (the record count is not known ahead)
# A record's index digest (two words) and its record number, from 1.
INDEX_ROW = np.dtype([("high", "<u8"), ("low", "<u8"), ("number", "<u8")])
_WHITESPACE = " \t\r\n"
_SPACES = re.compile(r"[ \t\r\n]*")
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
               int: "a number", float: "a number"}

Located = tuple[str, object]  # a value and where it is: "file:line", or "file:line (record N)" in an array
Values = Callable[[], Iterator[Located]]


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def validate_record(obj: object, where: str, renames: Mapping[str, str] | None = None,
                    index: str | None = None, utf8_checked: bool = False) -> dict:
    """The canonical record (FIELDS, in order) of ``obj``, or a DatasetError naming ``where``.

    ``renames`` maps source field names to canonical ones; ``index`` numbers a source without an index field;
    ``utf8_checked``: orjson parsed ``obj``, so no string holds a lone surrogate.
    """
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object with fields {', '.join(FIELDS)}, got {_type_name(obj)}")
    if renames:
        obj = {renames.get(key, key): value for key, value in obj.items()}
    if index is not None:
        obj = {**obj, "index": index}
    record = {}
    for field in FIELDS:
        if field not in obj:
            raise DatasetError(f"{where}: field '{field}' is missing; every record needs {', '.join(FIELDS)}")
        value = obj[field]
        if not isinstance(value, str):
            raise DatasetError(f"{where}: field '{field}' is {_type_name(value)}; it must be a string")
        try:
            if not utf8_checked:
                value.encode("utf-8")
        except UnicodeEncodeError:
            raise DatasetError(f"{where}: field '{field}' holds a lone surrogate escape (\\ud800-\\udfff) that is not "
                               "valid UTF-8; fix or remove that escape") from None
        record[field] = value
    for field in ("instruction", "output"):
        if not record[field].strip():
            raise DatasetError(f"{where}: field '{field}' is empty; '{field}' must have text")
    if not record["index"].strip():
        raise DatasetError(f"{where}: field 'index' is empty; give every record an index")
    if record["category"] not in CATEGORIES:
        raise DatasetError(f"{where}: category {record['category']!r} is unknown; use one of {', '.join(CATEGORIES)}")
    return record


class RepeatedName(ValueError):
    """A name twice in one JSON object: RFC 8259 leaves which value counts to the reader, so it is refused."""


def _unique_names(pairs: list[tuple[str, object]]) -> dict:
    """json's object_pairs_hook: the object, or RepeatedName for the first name it holds twice."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise RepeatedName(f"the name {name!r} appears twice in one object; keep only the value you mean")
            seen.add(name)
    return value


def _quotes_fit(raw: bytes, names: int) -> bool:
    """Whether object ``raw``, read by orjson as ``names`` names of string values (it keeps a repeated name's last
    value silently), surely repeats no name: four quotes per name besides escaped ones, two more per repeat. After an
    escaped backslash only json can tell (False)."""
    extra = raw.count(b'"') - 4 * names
    return extra == 0 or (extra > 0 and b'\\\\"' not in raw and raw.count(b'\\"') == extra)


def _json_problem(error: json.JSONDecodeError, at_end: bool) -> tuple[str, str]:
    """("truncated" or "malformed", the decoder's reason without its dangling " at")."""
    reason = re.sub(r"( starting)? at$", "", error.msg)
    ends_inside = error.pos >= len(error.doc.rstrip(_WHITESPACE)) or reason == "Unterminated string"
    if at_end and ends_inside:
        return "truncated", "the file ends before it is closed"
    return "malformed", reason.lower()


def iter_json_array(stream: BinaryIO, name: str, digest: Digest | None) -> Iterator[Located]:
    """The elements of a top-level JSON array, read a chunk at a time (strict UTF-8, a BOM stripped); the bytes read
    also feed ``digest``."""
    text = codecs.getincrementaldecoder("utf-8-sig")("strict")
    decoder = json.JSONDecoder(object_pairs_hook=_unique_names)
    buffer, position, line, eof = "", 0, 1, False  # line: the line of buffer[position]

    def line_at(offset: int) -> int:
        return line + buffer.count("\n", position, offset)

    def move(offset: int) -> None:
        nonlocal position, line
        position, line = offset, line_at(offset)

    def refill() -> bool:
        """Read the next chunk onto what is left of the buffer; False at the end of the file."""
        nonlocal buffer, position, eof
        if eof:
            return False
        chunk = stream.read(CHUNK_BYTES)
        if digest is not None:
            digest.update(chunk)
        eof = not chunk
        try:
            buffer, position = buffer[position:] + text.decode(chunk, final=eof), 0
        except UnicodeDecodeError as error:  # error.object: the bytes decoded (less a BOM), any held back first
            bad_line = line_at(len(buffer)) + error.object[:error.start].count(b"\n")
            raise DatasetError(f"{name}:{bad_line}: invalid UTF-8 bytes; save the file as UTF-8") from None
        return True

    def next_token() -> str:
        """Skip whitespace; the next character, or '' at the end of the file."""
        while True:
            move(_SPACES.match(buffer, position).end())  # type: ignore[union-attr]
            if position < len(buffer):
                return buffer[position]
            if not refill():
                return ""

    def located(problem: str) -> DatasetError:
        return DatasetError(f"{name}:{line}: {problem}")

    refill()
    next_token()
    move(position + 1)  # the '['
    if next_token() == "]":
        raise located("the JSON array holds no records; a source needs at least one")
    for number in itertools.count(1):
        if next_token() == "":
            raise located("the JSON array is truncated (no closing ']')")
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as error:
                if len(buffer) - position < MAX_RECORD_CHARS and refill():
                    continue
                if not eof:
                    raise located(f"record {number} is not closed within {MAX_RECORD_CHARS} characters; "
                                  "fix the JSON there") from None
                kind, reason = _json_problem(error, at_end=True)
                raise DatasetError(f"{name}:{line_at(error.pos)}: record {number} is {kind} ({reason}); "
                                   "fix the JSON there") from None
            except RecursionError:
                raise located(f"record {number} is nested too deeply; a record is one flat JSON object") from None
            except RepeatedName as repeated:
                raise DatasetError(f"{name}:{line} (record {number}): {repeated}") from None
        yield f"{name}:{line} (record {number})", value
        move(end)
        token = next_token()
        if token == "]":
            move(position + 1)
            break
        if token != ",":
            raise located("the JSON array is truncated (no closing ']')" if token == "" else
                          f"expected ',' or ']' after record {number}, found {token!r}; fix the JSON there")
        move(position + 1)
        if next_token() == "]":
            raise located("trailing comma before ']'; remove it")
    if next_token() != "":
        raise located("unexpected data after the JSON array; remove it")


class JsonLines:
    """Values of JSON Lines, one per line: CRLF and a BOM are repaired, blank lines inside are refused (at the end
    they are allowed).

    orjson reads a valid line several times faster than json. What it refuses (bad UTF-8 or JSON, a blank line, and
    what json accepts but orjson does not: lone surrogates, NaN, huge numbers) is read again by json for the exact
    error or value; so is a line that may repeat a name, which orjson reads silently (its last value).
    """

    def __init__(self, name: str, blank_line: int = 0, records: bool = False) -> None:
        """``records``: every value goes to validate_record(), and to recheck() if it is refused there."""
        self.name = name
        self.blank_line = blank_line  # the first blank line since the last value (0: none)
        self.parsed_strictly = False  # whether the last value came from orjson (so holds no lone surrogate)
        # A value of five names is a record: if it validates, its values are strings, so _quotes_fit() decides.
        self._record_names = len(FIELDS) if records else -1

    def values(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[Located]:
        """Each value of ``lines``, the first of which is line ``first_line`` of the file."""
        for line_number, raw in enumerate(lines, first_line):
            if line_number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = unique = None
            else:
                if type(value) is dict and len(value) == self._record_names:
                    unique = _quotes_fit(raw, self._record_names)
                else:
                    unique = type(value) is str or (type(value) is dict and _quotes_fit(raw, len(value))
                                                    and all(type(item) is str for item in value.values()))
            if not unique:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DatasetError(f"{self.name}:{line_number}: invalid UTF-8 bytes; save the file as UTF-8") \
                        from None
                if not line.strip(_WHITESPACE):
                    self.blank_line = self.blank_line or line_number
                    continue
            if self.blank_line:
                raise DatasetError(f"{self.name}:{self.blank_line}: blank line inside JSON Lines; remove it")
            self.parsed_strictly = bool(unique)
            yield f"{self.name}:{line_number}", value if unique else self._exact(raw, line_number)

    def _exact(self, raw: bytes, line_number: int) -> object:
        """The value of line ``raw`` (valid UTF-8) read by json, or the exact error."""
        try:
            return json.loads(raw.decode("utf-8").rstrip("\r\n"), object_pairs_hook=_unique_names)
        except RepeatedName as repeated:
            raise DatasetError(f"{self.name}:{line_number}: {repeated}") from None
        except json.JSONDecodeError as error:
            kind, reason = _json_problem(error, at_end=not raw.endswith(b"\n"))
            raise DatasetError(f"{self.name}:{line_number}: {kind} JSON ({reason}, column {error.pos + 1}); "
                               "each line must hold one complete JSON object") from None
        except RecursionError:
            raise DatasetError(f"{self.name}:{line_number}: JSON nested too deeply; each line must hold one flat "
                               "JSON object") from None

    def recheck(self, line_number: int, raw: bytes) -> None:
        """Raise json's error for line ``raw``, if any (a repeated name, or too deep): it comes before validation's."""
        self._exact(raw.removeprefix(codecs.BOM_UTF8), line_number)


@contextmanager
def opened_source(path: Path, name: str) -> Iterator[tuple[BinaryIO, bool]]:
    """``path`` open, and whether it holds JSON Lines (else a JSON array), by content; errors call it ``name``."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"{name}: file not found; check the source's path") from None
    except OSError as error:
        raise DatasetError(f"{name}: cannot open ({error.strerror})") from None
    with stream:
        head = stream.read(4096).removeprefix(codecs.BOM_UTF8)
        while not (first := head.lstrip(b" \t\r\n")[:1]) and head:  # only whitespace so far
            head = stream.read(CHUNK_BYTES)
        stream.seek(0)
        if not first:
            raise DatasetError(f"{name}: the file is empty; it must hold a JSON array of records or JSON Lines")
        if first not in (b"[", b"{"):
            if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise DatasetError(f"{name}: the file is UTF-16, not UTF-8; save it as UTF-8")
            shown = head.lstrip(b" \t\r\n")[:4].decode("utf-8", "replace")[:1]
            raise DatasetError(
                f"{name}: expected a JSON array of records or JSON Lines objects, but the file starts with {shown!r}")
        yield stream, first == b"{"


def _digested_lines(stream: BinaryIO, digest: Digest) -> Iterator[bytes]:
    """The lines of ``stream``; the digest is fed a batch of lines at a time, not per line."""
    while lines := stream.readlines(CHUNK_BYTES):
        digest.update(b"".join(lines))
        yield from lines


def iter_source_file(path: Path, name: str | None = None, digest: Digest | None = None) -> Iterator[Located]:
    """The values of a JSON array or JSON Lines file; errors call it ``name`` (default: its path), and its bytes feed
    ``digest`` as they are read."""
    name = name or str(path)
    with opened_source(path, name) as (stream, json_lines):
        if json_lines:
            yield from JsonLines(name).values(stream if digest is None else _digested_lines(stream, digest))
        else:
            yield from iter_json_array(stream, name, digest)


def index_digest(index: str) -> bytes:
    """What the duplicate-index check keeps of an index: 16 bytes of its UTF-8's sha256."""
    return hashlib.sha256(index.encode("utf-8")).digest()[:16]


class SourceCheck:
    """The checks of a source as a whole, made as its with block is left: at least one record, and no index twice;
    or, when a problem ends the block, a repeated index before it (the first problem in file order).

    Index digests and their record numbers are spilled by digest (src/core/spill.py), and each spill file is sorted
    on its own: the same memory at any size. ``reread()`` gives the stream again, to name the record.
    """

    def __init__(self, source: str, renames: Mapping[str, str] | None, reread: Values) -> None:
        self._source, self._renames, self._reread = source, renames, reread
        self._spill = SpillPartitions(INDEX_ROW, INDEX_CHECK_PARTS * PARTITION_RECORDS)
        self._pending = bytearray()  # digests not yet spilled, 16 bytes each
        self._count = 0

    def add(self, count: int, index_digests: bytes) -> None:
        """Count ``count`` more valid records, with their index_digest()s joined (b"" for a numbered source)."""
        self._count += count
        self._pending += index_digests
        if len(self._pending) >= INDEX_CHECK_RECORDS * 16:
            self._spill_pending()

    def _spill_pending(self) -> None:
        digests = np.frombuffer(bytes(self._pending), dtype="<u8").reshape(-1, 2)
        rows = np.empty(len(digests), dtype=INDEX_ROW)
        rows["high"], rows["low"] = digests[:, 0], digests[:, 1]
        rows["number"] = np.arange(self._spill.rows + 1, self._spill.rows + len(rows) + 1)
        self._pending.clear()
        self._spill.add(rows, rows["high"])

    def _check_repeats(self) -> None:
        self._spill_pending()
        first = self._spill.rows + 1  # the first record that repeats an index (none beyond the last)
        for rows in self._spill.partitions():
            rows = rows[np.lexsort((rows["low"], rows["high"]))]  # stable: the records of a digest stay in order
            again = (rows["high"][1:] == rows["high"][:-1]) & (rows["low"][1:] == rows["low"][:-1])
            first = min(first, int(rows["number"][1:][again].min(initial=first)))
        if first <= self._spill.rows:
            where, value = next(itertools.islice(self._reread(), first - 1, None))
            index = validate_record(value, where, self._renames)["index"]
            raise DatasetError(f"{where}: index {index!r} appears twice in source '{self._source}'; "
                               "give every record its own index")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        with self._spill:
            if error_type is None or issubclass(error_type, DatasetError):
                self._check_repeats()
            if error_type is None and self._count == 0:
                raise DatasetError(f"source '{self._source}' holds no records")


def iter_validated(values: Iterable[Located], source: str, renames: Mapping[str, str] | None = None,
                   number_records: bool = False, *, reread: Values) -> Iterator[dict]:
    """The records of ``values``, validated one at a time and checked as a whole (SourceCheck)."""
    with SourceCheck(source, renames, reread) as check:
        for count, (where, value) in enumerate(values, 1):
            record = validate_record(value, where, renames, str(count - 1) if number_records else None)
            check.add(1, b"" if number_records else index_digest(record["index"]))
            yield record
