"""Stage split (the "split-4"): cut the merged records into the shards of params.yaml.

Usage: python3 -m src.split PARAMS DVC_YAML MERGED PROVENANCE SHARD_PATH CARD METRICS SHARDS_TABLE CATEGORIES_TABLE
                            LENGTHS_TABLE LEAKAGE_TABLE CONTAMINATION_TABLE
SHARD_PATH names every shard file, with {shard} standing for the shard's name (K_of_N); all shards go to its
directory, which is replaced whole, so it holds exactly the shards params.yaml defines, and CARD, the dataset
card (src/card.py), in the same directory. The ranges are checked
against the merged record count before the directory is replaced: a refused sharding leaves nothing behind.
LEAKAGE_TABLE and CONTAMINATION_TABLE are the leakage and contamination certificate (src/shard_stats.py); the
evaluation files named in contamination.eval must be deps of the split stage in DVC_YAML.

split.strategy orders the records before the ranges cut them (src/strategies.py). The default, contiguous, is
one pass over the merged file whatever the shard count; stratified and shuffle first index the file (an offset
and a category per record, 9 bytes each), then read the records in their order.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .card import render_card
from .contamination import load_eval_set
from .errors import DatasetError, expect_args, run_cli
from .jsonl import atomic_directory, iter_lines, split_record_line, write_json
from .params import SplitParams, load_params
from .progress import counted_lines, line_progress
from .schema import CATEGORIES, CATEGORY_CODES
from .shard_stats import ShardFile, ShardTally
from .stages import check_declared, stage_deps
from .strategies import shuffled_order, stratified_order

SHARD_PLACEHOLDER = "{shard}"
WRITE_CHUNK_LINES = 4096


def shard_path_parts(shard_path: str) -> tuple[Path, str]:
    """(directory, file name pattern) of SHARD_PATH; the name holds {shard} once and the directory none."""
    path = Path(shard_path)
    if path.name.count(SHARD_PLACEHOLDER) != 1 or "{" in str(path.parent):
        raise DatasetError(f"{shard_path}: the shard path must hold {SHARD_PLACEHOLDER} once, in the file name")
    return path.parent, path.name


class _OpenShard:
    """One shard being written: lines go out in chunks, hashed as they go."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.pending: list[bytes] = []
        self.md5 = hashlib.md5()
        self.records = 0
        self.bytes = 0

    def write(self, line: bytes) -> None:
        self.pending.append(line)
        if len(self.pending) >= WRITE_CHUNK_LINES:
            self.flush()

    def flush(self) -> None:
        chunk = b"".join(self.pending)
        self.stream.write(chunk)
        self.md5.update(chunk)
        self.records += len(self.pending)
        self.bytes += len(chunk)
        self.pending = []


def write_shards(lines: Iterable[bytes], split: SplitParams, directory: Path, file_name: str,
                 tally: ShardTally) -> list[ShardFile]:
    """Write every shard of ``split`` from the merged ``lines`` into ``directory``; return what was written.

    Ranges are ordered and disjoint, so one shard is open at a time.
    """
    written: list[ShardFile] = []
    records = 0
    for number, shard in enumerate(split.shards):
        with (directory / file_name.replace(SHARD_PLACEHOLDER, shard.name)).open("wb") as stream:
            out = _OpenShard(stream)
            for line in lines:
                records += 1
                if records <= shard.start:
                    continue
                head, shard_line = split_record_line(line)
                out.write(shard_line)
                tally.add(number, head, shard_line)
                if records == shard.stop:
                    break
            out.flush()
        written.append(ShardFile(shard.name, shard.start, shard.stop, out.records, out.bytes, out.md5.hexdigest()))
    split.check_records(records + sum(1 for _ in lines))
    return written


def index_records(merged: Path) -> tuple[np.ndarray, np.ndarray]:
    """(byte offset, category code) of every record of the merged file."""
    offsets: list[int] = []
    codes: list[int] = []
    position = 0
    for line in iter_lines(merged):
        offsets.append(position)
        codes.append(CATEGORY_CODES[split_record_line(line)[0]["category"]])
        position += len(line)
    return np.array(offsets, dtype=np.int64), np.array(codes, dtype=np.int8)


def read_in_order(merged: Path, offsets: np.ndarray, order: np.ndarray) -> Iterator[bytes]:
    with merged.open("rb") as stream:
        for index in order:
            stream.seek(offsets[index])
            yield stream.readline()


def laid_out(merged: Path, split: SplitParams) -> Iterator[bytes]:
    """The merged records' lines in the order of split.strategy."""
    if split.strategy == "contiguous":
        return iter_lines(merged)
    offsets, categories = index_records(merged)
    split.check_records(len(offsets))
    if split.strategy == "stratified":
        order = stratified_order(categories, [(shard.start, shard.stop) for shard in split.shards], len(CATEGORIES))
    else:
        order = shuffled_order(len(offsets), split.seed)
    return read_in_order(merged, offsets, order)


def main(argv: Sequence[str]) -> None:
    (params_path, dvc_yaml, merged, provenance_path, shard_path, card_path, metrics_out, shards_table,
     categories_table, lengths_table, leakage_table, contamination_table) = expect_args(
        argv, ("PARAMS", "DVC_YAML", "MERGED", "PROVENANCE", "SHARD_PATH", "CARD", "METRICS", "SHARDS_TABLE",
               "CATEGORIES_TABLE", "LENGTHS_TABLE", "LEAKAGE_TABLE", "CONTAMINATION_TABLE"), "src.split")
    params = load_params(Path(params_path))
    check_declared("split", {f"contamination.eval.{name}": path for name, path in params.contamination.eval_files},
                   stage_deps(Path(dvc_yaml), "split"))
    directory, file_name = shard_path_parts(shard_path)
    if Path(card_path).parent != directory:
        raise DatasetError(f"{card_path}: the dataset card goes in the shard directory {directory}")
    for path in (merged, provenance_path):
        if not Path(path).is_file():
            raise DatasetError(f"{path}: missing; run the merge stage (dvc repro merge)")
    provenance = json.loads(Path(provenance_path).read_text(encoding="utf-8"))
    split = params.split.for_records(sum(source["kept"] for source in provenance["sources"].values()))
    eval_set = load_eval_set(params.contamination)
    with ShardTally(split.count, params.near_duplicates, eval_set) as tally, atomic_directory(directory) as staging, \
            line_progress([Path(merged)], "split") as bar:
        lines = counted_lines(laid_out(Path(merged), split), bar)
        written = write_shards(lines, split, staging, file_name, tally)
        summary = tally.summary(written)
        card = render_card(params.card, split, provenance, summary.tables["shards"], summary.tables["categories"],
                           file_name, SHARD_PLACEHOLDER)
        (staging / Path(card_path).name).write_text(card, encoding="utf-8")
    write_json(Path(metrics_out), {**summary.headline, "strategy": split.strategy, "seed": split.seed})
    for path, name in ((shards_table, "shards"), (categories_table, "categories"), (lengths_table, "lengths"),
                       (leakage_table, "leakage"), (contamination_table, "contamination")):
        write_json(Path(path), summary.tables[name])

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
