"""Stage split (the "split-4"): cut the merged records into the shards of params.yaml.

Usage: python3 -m src.split PARAMS DVC_YAML MERGED RECORD_INDEX PROVENANCE SHARD_PATH CARD METRICS SHARDS_TABLE
                            CATEGORIES_TABLE LENGTHS_TABLE LEAKAGE_TABLE CONTAMINATION_TABLE
SHARD_PATH names every shard file, with {shard} standing for the shard's name (K_of_N); all shards go to its
directory, which is replaced whole, so it holds exactly the shards params.yaml defines, and CARD, the dataset
card (src/sharding/card.py), in the same directory. The ranges are checked
against the merged record count before the directory is replaced: a refused sharding leaves nothing behind.
LEAKAGE_TABLE and CONTAMINATION_TABLE are the leakage and contamination certificate (src/sharding/tables.py); the
evaluation files named in contamination.eval must be deps of the split stage in DVC_YAML.

split.strategy orders the records before the ranges cut them (src/sharding/strategies.py). The default, contiguous, is
one pass over the merged file, in blocks, whatever the shard count; stratified and shuffle compute an order (8
bytes per record, from the categories of the record index), then read the records in that order. Every block is
checked against the record index (RECORD_INDEX, which the merge writes beside MERGED), which gives each record's
line and where its shard fields start, so shard lines are cut with one slice each and nothing is parsed.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from queue import SimpleQueue
from typing import BinaryIO

import numpy as np

from src.certificate.contamination import load_eval_set
from src.core.config import SplitParams, load_params
from src.core.deps import check_declared, stage_deps
from src.core.errors import DatasetError, expect_args, run_cli
from src.core.progress import counted_chunks, line_progress
from src.core.schema import CATEGORIES
from src.output.files import FlushBehind, WriteBehind, atomic_directory, write_durable, write_json, write_json_rows
from src.records.index import RecordIndex, check_block, line_lengths
from src.sharding.card import render_card
from src.sharding.strategies import shuffled_order, stratified_order
from src.sharding.tables import ShardFile, ShardTally

SHARD_PLACEHOLDER = "{shard}"
CHUNK_RECORDS = 4096  # records read, cut and written at a time
CATEGORY_CHUNK_ROWS = 1 << 16  # record index rows read at a time for their categories (stratified)
HASH_READ_BYTES = 1 << 20  # shard bytes read back and hashed at a time


def shard_path_parts(shard_path: str) -> tuple[Path, str]:
    """(directory, file name pattern) of SHARD_PATH; the name holds {shard} once and the directory none."""
    path = Path(shard_path)
    if path.name.count(SHARD_PLACEHOLDER) != 1 or "{" in str(path.parent):
        raise DatasetError(f"{shard_path}: the shard path must hold {SHARD_PLACEHOLDER} once, in the file name")
    return path.parent, path.name


@dataclass(frozen=True)
class Chunk:
    """Consecutive records of the laid-out order: their record lines, one after another in ``block`` (line i is
    block[starts[i]:ends[i]]), their merged indices and their record index rows (src/records/index.py)."""

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


class _ShardWriter:
    """Writes shard files on a second thread (WriteBehind), in submission order; a third thread reads each file back
    behind the writer and hashes it. Hashing the chunks as they are queued would hold the cutting to md5's pace (at
    1M records md5 alone takes over a second) or the queued chunks in memory; read back from the page cache, in a
    1 MiB buffer, the hashing overlaps the cutting and then the leakage summary. File reads and writes and md5
    release the GIL."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = paths
        self._open: tuple[int, BinaryIO, FlushBehind] | None = None  # the shard being written (in order)
        self.bytes = [0] * len(paths)
        self._behind = WriteBehind(self._write)
        self._written: SimpleQueue[tuple[int, int] | None] = SimpleQueue()  # (shard, bytes) flushed; None: no more
        self._hasher = ThreadPoolExecutor(max_workers=1)
        self._hashes = self._hasher.submit(self._hash_written)

    def write(self, number: int, data: bytes) -> None:
        self._behind.write(number, data)

    def _write(self, number: int, data: bytes) -> None:
        if self._open is None or self._open[0] != number:
            self._close_file(synced=True)
            stream = self._paths[number].open("wb")
            self._open = number, stream, FlushBehind(stream)
        self._open[1].write(data)
        self._open[1].flush()
        self.bytes[number] += len(data)
        self._written.put((number, len(data)))

    def _hash_written(self) -> list[str]:
        """The md5 of each shard file, read back as its bytes are flushed."""
        md5 = [hashlib.md5() for _ in self._paths]
        buffer = memoryview(bytearray(HASH_READ_BYTES))
        reading: tuple[int, BufferedReader] | None = None
        try:
            while (written := self._written.get()) is not None:
                number, left = written
                if reading is None or reading[0] != number:
                    if reading is not None:
                        reading[1].close()
                    reading = number, self._paths[number].open("rb")
                while left:
                    got = reading[1].readinto(buffer[:min(left, len(buffer))])
                    if not got:
                        raise DatasetError(f"{self._paths[number]}: changed while the split wrote it; run the split "
                                           "again once nothing else writes to its directory")
                    md5[number].update(buffer[:got])
                    left -= got
        finally:
            if reading is not None:
                reading[1].close()
        return [hashed.hexdigest() for hashed in md5]

    def close(self) -> None:
        """Wait for every write (raising the first failure), then close the files, flushed to disk."""
        try:
            self._behind.finish()
            self._close_file(synced=True)
        finally:
            self.abandon()

    def hashes(self) -> list[str]:
        """The md5 of each shard file, once every write is done (close()) and read back."""
        try:
            return self._hashes.result()
        finally:
            self._hasher.shutdown()

    def abandon(self) -> None:
        """Stop after the writes under way, without waiting for their outcome (the run is failing already)."""
        self._behind.abandon()
        self._written.put(None)
        self._close_file(synced=False)

    def _close_file(self, synced: bool) -> None:
        if self._open is not None:
            _, stream, flusher = self._open
            self._open = None
            try:
                flusher.sync() if synced else flusher.stop()
            finally:
                stream.close()


def cut_shard_lines(block: bytearray, cuts: np.ndarray, ends: np.ndarray) -> bytes:
    """The shard lines, one after another, of the record lines in ``block`` whose shard fields start at ``cuts``
    (the ", " before them) and which end at ``ends``.

    Rewrites ``block`` in place: the space of each ", " becomes the shard line's "{", so that each shard line is
    one slice of the block and its text is copied once.
    """
    np.frombuffer(block, dtype=np.uint8)[cuts + 1] = ord("{")
    with memoryview(block) as view:
        return b"".join([view[cut + 1:end] for cut, end in zip(cuts.tolist(), ends.tolist(), strict=True)])


def write_shards(chunks: Iterable[Chunk], split: SplitParams, directory: Path, file_name: str,
                 tally: ShardTally) -> Callable[[], list[ShardFile]]:
    """Write every shard of ``split`` from the laid-out ``chunks`` into ``directory``, on the disk when this returns;
    return what tells what was written, which waits for the shards' hashes: call it last, so the hashing overlaps
    whatever comes between.

    Ranges are ordered and disjoint: each chunk is cut where shards start and stop, so records between shards
    (allow_gaps) are passed over.
    """
    paths = [directory / file_name.replace(SHARD_PLACEHOLDER, shard.name) for shard in split.shards]
    records = [0] * len(paths)
    writer = _ShardWriter(paths)
    position = number = 0
    try:
        for chunk in chunks:
            end = position + len(chunk.records)
            while number < len(split.shards) and split.shards[number].start < end:
                shard = split.shards[number]
                first, last = max(shard.start, position) - position, min(shard.stop, end) - position
                rows = chunk.rows[first:last]
                shard_lines = cut_shard_lines(chunk.block, chunk.starts[first:last] + rows["head"],
                                              chunk.ends[first:last])
                writer.write(number, shard_lines)
                tally.add(number, chunk.records[first:last], rows, shard_lines)
                records[number] += last - first
                if shard.stop > end:
                    break
                number += 1
            position = end
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    split.check_records(position)

    def files() -> list[ShardFile]:
        return [ShardFile(shard.name, shard.start, shard.stop, records[number], writer.bytes[number], md5)
                for (number, shard), md5 in zip(enumerate(split.shards), writer.hashes(), strict=True)]
    return files


def merged_chunks(merged: Path, index: RecordIndex) -> Iterator[Chunk]:
    """The merged records in merged order, CHUNK_RECORDS at a time."""
    for part in index.blocks(merged, CHUNK_RECORDS):
        yield Chunk(part.block, part.starts, part.ends, np.arange(part.first, part.first + len(part.rows)), part.rows)


def chunks_in_order(merged: Path, index: RecordIndex, order: np.ndarray) -> Iterator[Chunk]:
    """The merged records in ``order``, CHUNK_RECORDS at a time."""
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


def laid_out(merged: Path, index: RecordIndex, split: SplitParams) -> Iterator[Chunk]:
    """The merged records in the order of split.strategy, a chunk at a time."""
    split.check_records(index.records)
    if split.strategy == "contiguous":
        return merged_chunks(merged, index)
    categories = np.concatenate([np.zeros(0, dtype=np.uint8),
                                 *(rows["category"] for rows in index.chunks(CATEGORY_CHUNK_ROWS))])
    if split.strategy == "stratified":
        order = stratified_order(categories, [(shard.start, shard.stop) for shard in split.shards], len(CATEGORIES))
    else:
        order = shuffled_order(index.records, split.seed)
    return chunks_in_order(merged, index, order)


def main(argv: Sequence[str]) -> None:
    (params_path, dvc_yaml, merged, record_index, provenance_path, shard_path, card_path, metrics_out, shards_table,
     categories_table, lengths_table, leakage_table, contamination_table) = expect_args(
        argv, ("PARAMS", "DVC_YAML", "MERGED", "RECORD_INDEX", "PROVENANCE", "SHARD_PATH", "CARD", "METRICS",
               "SHARDS_TABLE", "CATEGORIES_TABLE", "LENGTHS_TABLE", "LEAKAGE_TABLE", "CONTAMINATION_TABLE"),
        "src.split")
    params = load_params(Path(params_path))
    check_declared("split", {f"contamination.eval.{name}": path for name, path in params.contamination.eval_files},
                   stage_deps(Path(dvc_yaml), "split"))
    directory, file_name = shard_path_parts(shard_path)
    if Path(card_path).parent != directory:
        raise DatasetError(f"{card_path}: the dataset card goes in the shard directory {directory}")
    for path in (merged, record_index, provenance_path):
        if not Path(path).is_file():
            raise DatasetError(f"{path}: missing; run the merge stage (dvc repro merge)")
    provenance = json.loads(Path(provenance_path).read_text(encoding="utf-8"))
    eval_set = load_eval_set(params.contamination)
    with RecordIndex(Path(record_index)) as index:
        if index.records != sum(source["kept"] for source in provenance["sources"].values()):
            raise DatasetError(f"{record_index}: does not match {provenance_path}; run the merge stage again "
                               "(dvc repro -f merge)")
        split = params.split.for_records(index.records)
        with ShardTally(split.count, Path(merged), index.records, params.near_duplicates, eval_set) as tally:
            with atomic_directory(directory) as staging, line_progress([Path(merged)], "split") as bar:
                shard_files = write_shards(counted_chunks(laid_out(Path(merged), index, split), bar), split,
                                           staging, file_name, tally)
                summary = tally.summary(shard_files)
                card = render_card(params.card, split, provenance, summary.tables["shards"],
                                   summary.tables["categories"], file_name, SHARD_PLACEHOLDER, summary.headline,
                                   eval_set.files, eval_set.ngram)
                write_durable(staging / Path(card_path).name, card.encode("utf-8"))
            write_json(Path(metrics_out), {**summary.headline, "strategy": split.strategy, "seed": split.seed})
            for path, name in ((shards_table, "shards"), (categories_table, "categories"),
                               (lengths_table, "lengths"), (leakage_table, "leakage"),
                               (contamination_table, "contamination")):
                write_json_rows(Path(path), summary.tables[name])  # the contamination indices come from the tally


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
