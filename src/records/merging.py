"""The merge: raw sources concatenated in order and renumbered, exact duplicates counted (and dropped when asked),
near-duplicates of earlier kept records dropped when asked. Duplicates are counted from the raw record indexes'
digests in DuckDB (src/core/scratch.py), and record lines are copied as bytes."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import orjson

from src.certificate.near_duplicates import NearDuplicateIndex, prompt_text
from src.core.config import NearDuplicateParams
from src.core.scratch import insert
from src.output.files import atomic_file, write_behind
from src.records.index import RecordIndex, RecordIndexWriter, line_lengths
from src.records.lines import merged_head_start, prompt_bytes, prompt_fields
from src.records.stats import GroupStats

CHUNK_RECORDS = 4096  # raw records read, checked and written at a time
DIGEST_CHUNK_ROWS = 1 << 16  # raw record index rows read at a time for their digests


@dataclass(frozen=True)
class RawChunk:
    """Raw records of one source, the first being record ``first`` of all sources: line i is
    block[starts[i]:ends[i]], with index row rows[i]."""

    source: str
    first: int
    block: bytes | bytearray
    starts: np.ndarray
    ends: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return int((self.ends - self.starts).sum())

    def kept(self, keep: np.ndarray) -> RawChunk:
        return RawChunk(self.source, self.first, self.block, self.starts[keep], self.ends[keep], self.rows[keep])


@dataclass
class DuplicateCounts:
    exact: int = 0  # records whose instruction, input and output appeared before
    same_prompt: int = 0  # records whose instruction and input appeared before (includes exact)
    dropped: int = 0
    near_dropped: int = 0  # records dropped as near-duplicates of an earlier kept record


@dataclass(frozen=True)
class Merged:
    counts: DuplicateCounts
    kept: Counter[str]  # records kept by source name
    stats: GroupStats  # of the kept records


def raw_chunks(sources: Sequence[tuple[str, Path]]) -> Iterator[RawChunk]:
    """The records of the raw files of ``sources`` (name, NAME.jsonl beside NAME.npy), in order."""
    first = 0
    for name, lines in sources:
        with RecordIndex(lines.with_suffix(".npy"), stage="raw") as index:
            for part in index.blocks(lines, CHUNK_RECORDS):
                yield RawChunk(name, first + part.first, part.block, part.starts, part.ends, part.rows)
            first += index.records


def count_duplicates(database: duckdb.DuckDBPyConnection, indexes: Sequence[Path]) -> DuplicateCounts:
    """Duplicates among the records of the raw record ``indexes``, whose digests stay in table raw_digests."""
    database.execute("CREATE TABLE raw_digests (position BIGINT, line_hi UBIGINT, line_lo UBIGINT, "
                     "prompt_hi UBIGINT, prompt_lo UBIGINT)")
    first = 0
    for path in indexes:
        with RecordIndex(path, stage="raw") as index:
            for rows in index.chunks(DIGEST_CHUNK_ROWS):
                line, prompt = rows["line"], rows["prompt"]
                insert(database, "raw_digests", {"position": np.arange(first, first + len(rows)),
                                                 "line_hi": line[:, 0], "line_lo": line[:, 1],
                                                 "prompt_hi": prompt[:, 0], "prompt_lo": prompt[:, 1]})
                first += len(rows)
    [(exact, same_prompt)] = database.execute(
        "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT line_hi, line_lo FROM raw_digests)), "
        "count(*) - (SELECT count(*) FROM (SELECT DISTINCT prompt_hi, prompt_lo FROM raw_digests)) "
        "FROM raw_digests").fetchall()
    return DuplicateCounts(exact=exact, same_prompt=same_prompt)


def without_repeats(chunks: Iterable[RawChunk], database: duckdb.DuckDBPyConnection) -> Iterator[RawChunk]:
    """``chunks`` less every record whose shard line an earlier record has, read from DuckDB in order."""
    # One sort, which spills (a window partitioned by digest would not).
    result = database.execute(
        "SELECT position FROM (SELECT position, lag(line_hi) OVER w = line_hi AND lag(line_lo) OVER w = line_lo "
        "AS again FROM raw_digests WINDOW w AS (ORDER BY line_hi, line_lo, position)) WHERE again ORDER BY position")
    pending = np.zeros(0, dtype=np.int64)
    for chunk in chunks:
        end = chunk.first + len(chunk)
        while (not len(pending) or pending[-1] < end) and len(batch := result.fetch_df_chunk(32)):
            pending = np.concatenate([pending, batch["position"].to_numpy()])
        repeats, pending = pending[pending < end], pending[pending >= end]
        keep = np.ones(len(chunk), dtype=bool)
        keep[repeats - chunk.first] = False
        yield chunk.kept(keep)


def without_near_duplicates(chunks: Iterable[RawChunk], params: NearDuplicateParams,
                            counts: DuplicateCounts) -> Iterator[RawChunk]:
    """``chunks`` less each near-duplicate of an earlier kept record, counted in ``counts``."""
    with NearDuplicateIndex(params) as near_duplicates:
        for chunk in chunks:
            cuts = (chunk.starts + chunk.rows["head"]).tolist()
            keep = near_duplicates.keep([prompt_text(prompt_fields(prompt_bytes(b"{" + chunk.block[cut + 2:end])))
                                         for cut, end in zip(cuts, chunk.ends.tolist(), strict=True)])
            counts.near_dropped += int(np.count_nonzero(~keep))
            yield chunk.kept(keep)


def write_merged(chunks: Iterable[RawChunk], merged: Path, record_index: Path, counts: DuplicateCounts) -> Merged:
    """Write the kept raw records ``chunks``, renumbered from 0, to the merged file and its record index."""
    result, number = Merged(counts, Counter(), GroupStats()), 0
    with RecordIndexWriter(record_index) as index, atomic_file(merged) as file, write_behind(file) as stream:
        for chunk in chunks:
            source = orjson.dumps(chunk.source)
            starts = chunk.starts.tolist()
            heads = [merged_head_start(at, source) for at in range(number, number + len(starts))]
            number += len(heads)
            with memoryview(chunk.block) as view:
                # Each merged line: its head's start, then the raw line after its "{".
                block = b"".join([part for head, start, end in zip(heads, starts, chunk.ends.tolist(), strict=True)
                                  for part in (head, view[start + 1:end])])
            lengths = line_lengths(heads) + (chunk.ends - chunk.starts - 1)
            stream.write(block)
            rows = chunk.rows.copy()
            rows["head"] = lengths - (chunk.ends - chunk.starts - rows["head"])  # the shard fields are the same
            rows["offset"] = np.cumsum(lengths) - lengths
            index.add(rows, len(block))
            result.kept[chunk.source] += len(rows)
            result.stats.add(rows)
    return result


def merge_sources(database: duckdb.DuckDBPyConnection, files: Sequence[tuple[str, Path]], merged: Path,
                  record_index: Path, drop_duplicates: bool, near_duplicates: NearDuplicateParams | None,
                  progress: Callable[[Iterator[RawChunk]], Iterator[RawChunk]] = iter) -> Merged:
    """Merge the raw ``files`` (source name, NAME.jsonl) into ``merged`` and ``record_index``, read via ``progress``."""
    counts = count_duplicates(database, [path.with_suffix(".npy") for _, path in files])
    chunks = progress(raw_chunks(files))
    if drop_duplicates:
        chunks, counts.dropped = without_repeats(chunks, database), counts.exact
    if near_duplicates is not None:
        chunks = without_near_duplicates(chunks, near_duplicates, counts)
    return write_merged(chunks, merged, record_index, counts)
