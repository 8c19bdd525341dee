"""Records in the databricks-dolly-15k-ja schema: reading sources as streams, and validation.

Rules (README "Input rules"): a UTF-8 BOM is stripped and CRLF line endings are read as LF
(both repaired); everything else that is wrong stops the run with a one-line error naming the
file and the line or record number.
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, Self

import numpy as np
import orjson

from src.core.errors import DatasetError
from src.core.schema import CATEGORIES, FIELDS
from src.core.scratch import insert, scratch_database

NON_EMPTY_FIELDS = ("instruction", "output")
CHUNK_BYTES = 1 << 20
INDEX_CHECK_RECORDS = 1 << 16  # index digests added to the duplicate-index check's table at a time
# A record larger than this is reported instead of read on (bounds memory on garbage input).
MAX_RECORD_CHARS = 16 << 20


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def validate_record(obj: object, where: str, renames: Mapping[str, str] | None = None,
                    index: str | None = None, utf8_checked: bool = False) -> dict:
    """Return the canonical record (FIELDS, in order) or raise DatasetError naming ``where``.

    ``renames`` maps a source's field names to canonical ones (e.g. context -> input);
    ``index``, when given, numbers a source that has no index field of its own; ``utf8_checked`` says that no
    string of ``obj`` can hold a lone surrogate (orjson parsed it: it refuses them), so none is looked for.
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
            raise DatasetError(
                f"{where}: field '{field}' holds a lone surrogate escape (\\ud800-\\udfff) that is not valid "
                "UTF-8; fix or remove that escape"
            ) from None
        record[field] = value
    for field in NON_EMPTY_FIELDS:
        if not record[field].strip():
            raise DatasetError(f"{where}: field '{field}' is empty; '{field}' must have text")
    if not record["index"].strip():
        raise DatasetError(f"{where}: field 'index' is empty; give every record an index")
    if record["category"] not in CATEGORIES:
        raise DatasetError(
            f"{where}: category {record['category']!r} is unknown; use one of {', '.join(CATEGORIES)}"
        )
    return record


class ByteStream(Protocol):
    """What the readers need of a source: chunks, and lines split on \\n."""

    def read(self, size: int, /) -> bytes: ...

    def __iter__(self) -> Iterator[bytes]: ...


class SourceFile(ByteStream, Protocol):
    def readlines(self, hint: int, /) -> list[bytes]: ...


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class _Digesting:
    """A source stream that feeds every byte it hands out to ``digest`` (the file's checksum, in one read)."""

    def __init__(self, stream: SourceFile, digest: Digest) -> None:
        self._stream, self._digest = stream, digest

    def read(self, size: int, /) -> bytes:
        data = self._stream.read(size)
        self._digest.update(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        # Lines a batch at a time, so the digest is fed once per batch rather than once per line.
        while lines := self._stream.readlines(CHUNK_BYTES):
            self._digest.update(b"".join(lines))
            yield from lines


class _Utf8Text:
    """Decode a byte stream chunk by chunk (strict UTF-8), strip a leading BOM, count lines."""

    def __init__(self, stream: ByteStream, name: str) -> None:
        self._stream = stream
        self._name = name
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._first = True
        self.lines_read = 0  # newlines in the text returned so far
        self.eof = False

    def read(self) -> str:
        chunk = self._stream.read(CHUNK_BYTES)
        self.eof = not chunk
        try:
            text = self._decoder.decode(chunk, final=self.eof)
        except UnicodeDecodeError as error:
            line = self.lines_read + chunk[: max(error.start, 0)].count(b"\n") + 1
            raise DatasetError(f"{self._name}:{line}: invalid UTF-8 bytes; save the file as UTF-8") from None
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")
        self.lines_read += text.count("\n")
        return text


_WHITESPACE = " \t\r\n"


_STRING_TYPE = frozenset({str})


class RepeatedName(ValueError):
    """A JSON object that holds a name twice: RFC 8259 leaves which value counts to the reader, so it is refused."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def problem(self) -> str:
        return f"the name {self.name!r} appears twice in one object; keep only the value you mean"


def _unique_names(pairs: list[tuple[str, object]]) -> dict:
    """json's object_pairs_hook: the object, or RepeatedName for the first name it holds twice (at any depth)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise RepeatedName(name)
            seen.add(name)
    return value


def _names_unique(raw: bytes, value: object) -> bool:
    """Whether ``raw``, a JSON text orjson parsed to ``value`` (orjson keeps a repeated name's last value, silently),
    surely repeats no name. It does not when ``value`` is a string, nor when it is an object of string values whose
    text has exactly four delimiting quotes per name: every string has two, and a name written twice adds its own.
    For values of other types, only the exact check can tell (False)."""
    if type(value) is str:
        return True
    if type(value) is not dict or not _STRING_TYPE.issuperset(map(type, value.values())):
        return False
    quotes = raw.count(b'"')
    return quotes == 4 * len(value) or _escaped_quotes(raw, quotes - 4 * len(value))


def _escaped_quotes(raw: bytes, count: int) -> bool:
    """Whether JSON text ``raw`` holds exactly ``count`` escaped quotes. A quote byte after one backslash is one;
    after two (a string that ends in a backslash: rare), only the exact check can tell (False)."""
    return count > 0 and b'\\\\"' not in raw and raw.count(b'\\"') == count


def _json_problem(error: json.JSONDecodeError, at_end: bool) -> tuple[str, str]:
    """("truncated" or "malformed", the decoder's reason without its dangling " at")."""
    reason = re.sub(r"( starting)? at$", "", error.msg)
    ends_inside = error.pos >= len(error.doc.rstrip(_WHITESPACE)) or reason == "Unterminated string"
    if at_end and ends_inside:
        return "truncated", "the file ends before it is closed"
    return "malformed", reason.lower()


def _iter_json_array(stream: ByteStream, name: str) -> Iterator[tuple[str, object]]:
    """Stream the elements of a top-level JSON array, each with a 'file:line record N' location."""
    text = _Utf8Text(stream, name)
    decoder = json.JSONDecoder(object_pairs_hook=_unique_names)
    buffer, position = text.read(), 0
    counted, counted_line = 0, 1  # the offset in buffer that line_at last counted to, and its line

    def line_at(offset: int) -> int:
        """Count only the newlines since the last call: counting from buffer[0] each time was quadratic."""
        nonlocal counted, counted_line
        # One of the two ranges is empty; the second keeps an offset behind the last one right.
        counted_line += buffer.count("\n", counted, offset) - buffer.count("\n", offset, counted)
        counted = offset
        return counted_line

    def refill() -> bool:
        nonlocal buffer, position, counted, counted_line
        if text.eof:
            return False
        line = line_at(position)
        buffer, position = buffer[position:] + text.read(), 0
        counted, counted_line = 0, line
        return True

    def next_token() -> str:
        """Skip whitespace; return the next character, or '' at the end of the file."""
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in _WHITESPACE:
                position += 1
            if position < len(buffer):
                return buffer[position]
            if not refill():
                return ""

    def truncated() -> DatasetError:
        return DatasetError(f"{name}:{line_at(position)}: the JSON array is truncated (no closing ']')")

    if next_token() != "[":
        raise AssertionError("caller checked the leading '['")
    position += 1
    number = 0
    if next_token() == "]":
        raise DatasetError(f"{name}:{line_at(position)}: the JSON array holds no records; a source needs at least one")
    while True:
        token = next_token()
        if token == "":
            raise truncated()
        start_line = line_at(position)
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as error:
                if len(buffer) - position < MAX_RECORD_CHARS and refill():
                    continue
                if not text.eof:
                    raise DatasetError(f"{name}:{start_line}: record {number + 1} is not closed within "
                                       f"{MAX_RECORD_CHARS} characters; fix the JSON there") from None
                kind, reason = _json_problem(error, at_end=True)
                raise DatasetError(
                    f"{name}:{line_at(error.pos)}: record {number + 1} is {kind} ({reason}); fix the JSON there"
                ) from None
            except RecursionError:
                raise DatasetError(f"{name}:{start_line}: record {number + 1} is nested too deeply; "
                                   "a record is one flat JSON object") from None
            except RepeatedName as repeated:
                raise DatasetError(f"{name}:{start_line} (record {number + 1}): {repeated.problem()}") from None
        position = end
        number += 1
        yield f"{name}:{start_line} (record {number})", value
        token = next_token()
        if token == ",":
            position += 1
            if next_token() == "]":
                raise DatasetError(f"{name}:{line_at(position)}: trailing comma before ']'; remove it")
            continue
        if token == "]":
            position += 1
            break
        if token == "":
            raise truncated()
        raise DatasetError(f"{name}:{line_at(position)}: expected ',' or ']' after record {number}, "
                           f"found {token!r}; fix the JSON there")
    if next_token() != "":
        raise DatasetError(f"{name}:{line_at(position)}: unexpected data after the JSON array; remove it")


class JsonLines:
    """Values of JSON Lines, one object per line, read a batch of lines at a time: CRLF and a BOM are repaired, blank
    lines inside are refused (blank lines at the end are allowed)."""

    def __init__(self, name: str, blank_line: int = 0, records: bool = False) -> None:
        """``records``: every value will go through validate_record(), and check_names() if it fails."""
        self.name = name
        # The first of the blank lines read since the last object (0: none): an error if another object follows.
        self.blank_line = blank_line
        self.parsed_strictly = False  # whether the last value came from orjson (so holds no lone surrogate)
        self._records = records

    def values(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[tuple[str, object]]:
        """(location, value) of each object in ``lines``, the first of which is line ``first_line`` of the file."""
        name = self.name
        # A record of the schema: its five values are strings if it validates (check_names() if not), so its
        # twenty quote bytes, less the escaped ones, are exactly its names' and values' (_names_unique()).
        record_names, record_quotes = (len(FIELDS), 4 * len(FIELDS)) if self._records else (-1, -1)
        for line_number, raw in enumerate(lines, first_line):
            if line_number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            # Fast path: orjson reads a valid line several times faster than json. Whatever it refuses (bad UTF-8
            # or JSON, a blank line, and values json accepts but orjson does not: lone surrogate escapes, NaN, huge
            # numbers) takes the json path below, which gives the exact error or the value validation refuses; so
            # does a line that may repeat a name, which orjson would read silently.
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
            else:
                if type(value) is dict and len(value) == record_names:
                    quotes = raw.count(b'"')
                    unique = quotes == record_quotes or _escaped_quotes(raw, quotes - record_quotes)
                else:
                    unique = _names_unique(raw, value)
                if unique:
                    if self.blank_line:
                        raise DatasetError(f"{name}:{self.blank_line}: blank line inside JSON Lines; remove it")
                    self.parsed_strictly = True
                    yield f"{name}:{line_number}", value
                    continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DatasetError(f"{name}:{line_number}: invalid UTF-8 bytes; save the file as UTF-8") from None
            if not line.strip(_WHITESPACE):
                self.blank_line = self.blank_line or line_number
                continue
            if self.blank_line:
                raise DatasetError(f"{name}:{self.blank_line}: blank line inside JSON Lines; remove it")
            try:
                value = json.loads(line.rstrip("\r\n"), object_pairs_hook=_unique_names)
            except RepeatedName as repeated:
                raise DatasetError(f"{name}:{line_number}: {repeated.problem()}") from None
            except json.JSONDecodeError as error:
                kind, reason = _json_problem(error, at_end=not raw.endswith(b"\n"))
                raise DatasetError(
                    f"{name}:{line_number}: {kind} JSON ({reason}, column {error.pos + 1}); "
                    "each line must hold one complete JSON object"
                ) from None
            except RecursionError:
                raise DatasetError(f"{name}:{line_number}: JSON nested too deeply; each line must hold one flat "
                                   "JSON object") from None
            self.parsed_strictly = False
            yield f"{name}:{line_number}", value


def check_names(name: str, line_number: int, raw: bytes) -> None:
    """Raise the error of a name repeated in JSON line ``raw`` (line ``line_number`` of file ``name``), if it repeats
    one: for a record that failed validation after JsonLines(records=True) read it."""
    try:
        # JSON one of the readers read, but for the BOM the first line may start with.
        json.loads(raw.decode("utf-8").removeprefix("\ufeff"), object_pairs_hook=_unique_names)
    except RepeatedName as repeated:
        raise DatasetError(f"{name}:{line_number}: {repeated.problem()}") from None
    except RecursionError:
        pass  # nested deeper than json reads (orjson reads 1,024 levels): validation's error stands


def _iter_json_lines(stream: ByteStream, name: str) -> Iterator[tuple[str, object]]:
    return JsonLines(name).values(stream)


@contextmanager
def opened_source(path: Path, name: str) -> Iterator[tuple[BinaryIO, bool]]:
    """``path`` open for reading, and whether it holds JSON Lines (else a JSON array), chosen by content; errors
    call the file ``name``."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"{name}: file not found; check the source's path") from None
    except OSError as error:
        raise DatasetError(f"{name}: cannot open ({error.strerror})") from None
    with stream:
        head = stream.read(4096).removeprefix(codecs.BOM_UTF8)
        first = head.lstrip(b" \t\r\n")[:1]
        while not first and head:
            head = stream.read(CHUNK_BYTES)
            first = head.lstrip(b" \t\r\n")[:1]
        stream.seek(0)
        if not first:
            raise DatasetError(f"{name}: the file is empty; it must hold a JSON array of records or JSON Lines")
        if first not in (b"[", b"{"):
            if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise DatasetError(f"{name}: the file is UTF-16, not UTF-8; save it as UTF-8")
            shown = head.lstrip(b" \t\r\n")[:4].decode("utf-8", "replace")[:1]
            raise DatasetError(
                f"{name}: expected a JSON array of records or JSON Lines objects, but the file starts with {shown!r}"
            )
        yield stream, first == b"{"


def iter_source_file(path: Path, name: str | None = None, digest: Digest | None = None) -> Iterator[tuple[str, object]]:
    """Stream (location, value) from a JSON array or JSON Lines file, chosen by content.

    ``name`` is how errors refer to the file (default: its path); ``digest``, when given, is fed the file's bytes
    as they are read.
    """
    name = name or str(path)
    with opened_source(path, name) as (stream, json_lines):
        yield from read_values(stream, name, json_lines, digest)


def read_values(stream: SourceFile, name: str, json_lines: bool,
                digest: Digest | None = None) -> Iterator[tuple[str, object]]:
    """(location, value) of a source open as ``stream`` (opened_source()), its bytes fed to ``digest``."""
    reader = _iter_json_lines if json_lines else _iter_json_array
    return reader(stream if digest is None else _Digesting(stream, digest), name)


def index_digest(index: str) -> bytes:
    """What the duplicate-index check keeps of an index: 16 bytes of its UTF-8's sha256."""
    return hashlib.sha256(index.encode("utf-8")).digest()[:16]


class _IndexRepeats:
    """The index digests of a source with their record numbers, in a DuckDB table (src/core/scratch.py) filled
    INDEX_CHECK_RECORDS at a time; which record first repeats an index is asked once, after the pass: no lookup per
    record (an on-disk set took a third of the raw stage's time)."""

    def __init__(self) -> None:
        self._scratch = ExitStack()
        self._database = self._scratch.enter_context(scratch_database())
        self._database.execute("CREATE TABLE indexes (high UBIGINT, low UBIGINT, record BIGINT)")
        self._pending = bytearray()  # digests not yet in the table, 16 bytes each
        self._added = 0

    def close(self) -> None:
        self._scratch.close()

    def add_digests(self, digests: bytes) -> None:
        """Add the index_digest()s of the next records, joined."""
        self._pending += digests
        if len(self._pending) >= INDEX_CHECK_RECORDS * 16:
            self._flush()

    def _flush(self) -> None:
        words = np.frombuffer(bytes(self._pending), dtype="<u8").reshape(-1, 2)
        self._pending.clear()
        insert(self._database, "indexes", {"high": words[:, 0], "low": words[:, 1],
                                           "record": np.arange(self._added + 1, self._added + len(words) + 1)})
        self._added += len(words)

    def first_repeat(self) -> int | None:
        """The number (from 1) of the first record whose index an earlier record has; after the last add_digests()."""
        self._flush()
        [(first,)] = self._database.execute(  # one sort, which spills (a window partitioned by digest would not)
            "SELECT min(record) FROM (SELECT record, lag(high) OVER w = high AND lag(low) OVER w = low AS again "
            "FROM indexes WINDOW w AS (ORDER BY high, low, record)) WHERE again").fetchall()
        return first


Values = Callable[[], Iterator[tuple[str, object]]]


class SourceCheck:
    """The checks of a source as a whole: no index twice (unless the source is numbered) and at least one record.

    Records are added as they are validated. Duplicate indexes are found once the stream ends (finish()) or another
    problem stops it (repeats(), then raise that problem), so the first problem in file order is the one reported;
    ``reread()`` gives the stream again, to find the record that repeats an index.
    """

    def __init__(self, source: str, renames: Mapping[str, str] | None, number_records: bool, reread: Values) -> None:
        self._source, self._renames, self._number_records, self._reread = source, renames, number_records, reread
        self._indexes = _IndexRepeats()
        self.count = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._indexes.close()

    def add(self, count: int, index_digests: bytes) -> None:
        """Count ``count`` more valid records, with their index_digest()s joined (b"" for a numbered source)."""
        self.count += count
        if not self._number_records:
            self._indexes.add_digests(index_digests)

    def repeats(self) -> None:
        """Raise DatasetError if a record added so far repeats an index."""
        repeat = None if self._number_records else self._indexes.first_repeat()
        if repeat is not None:
            where, value = next(itertools.islice(self._reread(), repeat - 1, None))
            index = validate_record(value, where, self._renames)["index"]
            raise DatasetError(f"{where}: index {index!r} appears twice in source '{self._source}'; "
                               "give every record its own index")

    def finish(self) -> None:
        self.repeats()
        if self.count == 0:
            raise DatasetError(f"source '{self._source}' holds no records")


def iter_validated(values: Iterator[tuple[str, object]], source: str, renames: Mapping[str, str] | None = None,
                   number_records: bool = False, *, reread: Values) -> Iterator[dict]:
    """Validate a stream of (location, value), streamed out as they are validated, under SourceCheck."""
    with SourceCheck(source, renames, number_records, reread) as check:
        try:
            for count, (where, value) in enumerate(values, 1):
                record = validate_record(value, where, renames, str(count - 1) if number_records else None)
                check.add(1, b"" if number_records else index_digest(record["index"]))
                yield record
        except DatasetError:
            check.repeats()
            raise
        check.finish()
