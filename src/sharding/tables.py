"""What a split reports, counted as the shards are written: the per-shard tables (sizes, category shares, length
histograms: pandas), the contamination certificate, the leakage certificate from the records' prompts
(src/certificate/), and the headline metrics, which mean the same whatever the shard count.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from src.certificate.contamination import EvalSet
from src.certificate.leakage import Leakage, LeakageTally, PromptReader, leakage_rows
from src.core.config import NearDuplicateParams
from src.core.schema import CATEGORIES
from src.output.files import IntegerChunks
from src.records.stats import COLUMNS, LENGTH_BINS, LENGTH_LABELS, TEXT_FIELDS, GroupStats, mean_chars
from src.sharding.writer import ShardPiece

INDEX_BATCH = 1 << 16  # contaminated indices read back at a time


@dataclass(frozen=True)
class ShardFile:
    """What was written for one shard: its name, range, record count, size and md5."""

    name: str
    start: int
    stop: int
    records: int
    bytes: int
    md5: str


class ShardRecords:
    """The records written to each shard: their statistics (src/records/stats.py), and the merged indices of those
    that share text with ``eval_set``, in files of a temporary directory (every record may be contaminated). Their
    prompts go to a LeakageTally."""

    def __init__(self, shards: int, eval_set: EvalSet, near_duplicates: NearDuplicateParams,
                 read_prompts: PromptReader, records: int) -> None:
        """``read_prompts`` reads prompts back from the merged file; ``records``: about how many will be added."""
        self.eval_set, self._stats = eval_set, GroupStats(shards)
        self._open = ExitStack()
        self._leakage = self._open.enter_context(LeakageTally(near_duplicates, read_prompts, records))
        self._directory = Path(self._open.enter_context(tempfile.TemporaryDirectory(prefix="shard-records-")))
        self._contaminated = np.zeros(shards, dtype=np.int64)

    def add(self, piece: ShardPiece) -> None:
        rows = piece.rows
        self._leakage.add(piece.shard, piece.records, rows["offset"], rows["prompt"])
        self._stats.add(rows, piece.shard)
        if not self.eval_set.files:
            return
        contaminated = piece.records[self.eval_set.contaminated(piece.lines)].astype(np.int64)
        if len(contaminated):
            self._contaminated[piece.shard] += len(contaminated)
            with open(self._indices_file(piece.shard), "ab") as indices:
                contaminated.tofile(indices)

    def leakage(self) -> Leakage:
        """What the shards share, once the last record is added (src/certificate/leakage.py)."""
        return self._leakage.summary()

    def tables(self, files: Sequence[ShardFile], leakage: Leakage) -> tuple[dict[str, pd.DataFrame | list[dict]],
                                                                            dict[str, int | float]]:
        """The detail tables by name (the per-shard ones as DataFrames, the certificate's as rows), and the
        headline metrics; once the last record is added."""
        names = [shard.name for shard in files]
        stats = pd.DataFrame(self._stats.counts, columns=COLUMNS)
        sizes = pd.DataFrame([shard.__dict__ for shard in files]).rename(columns={"name": "shard"})
        shards = sizes[["shard", "records", "bytes", "md5", "start", "stop"]].assign(
            with_input=stats["with_input"].to_numpy(),
            **{f"mean_chars_{field}": [mean_chars(row)[field] for row in stats.to_dict("records")]
               for field in TEXT_FIELDS})
        counts = stats[list(CATEGORIES)]
        share = (100 * counts).div(sizes["records"].clip(lower=1).to_numpy(), axis=0)
        whole_share = 100 * counts.sum() / max(int(counts.to_numpy().sum()), 1)
        categories = pd.DataFrame({
            "shard": np.repeat(names, len(CATEGORIES)), "category": np.tile(CATEGORIES, len(names)),
            "records": counts.to_numpy().ravel(), "share": share.to_numpy().ravel(),
            "whole_share": np.tile(whole_share.to_numpy(), len(names)),
            "deviation": (share - whole_share).to_numpy().ravel()})
        rounded = ["share", "whole_share", "deviation"]
        categories[rounded] = categories[rounded].map(lambda value: round(value, 2))  # Python's: numpy's may differ
        lengths = pd.DataFrame({
            "shard": np.repeat(names, len(LENGTH_BINS)), "bin_start": np.tile(LENGTH_BINS, len(names)),
            "chars": np.tile(LENGTH_LABELS, len(names)),
            "records": stats[LENGTH_LABELS].to_numpy().ravel()})
        contaminated = self._contaminated.tolist()
        tables = {"shards": shards, "categories": categories, "lengths": lengths,
                  "leakage": leakage_rows(leakage.pairs, names),
                  "contamination": [{"shard": name, "records": shard.records, "contaminated": int(count),
                                     "indices": IntegerChunks(partial(self._indices, number))}
                                    for number, (name, shard, count) in enumerate(zip(names, files, contaminated,
                                                                                      strict=True))]}
        headline = {"shards": len(files), "records_min": int(sizes["records"].min()),
                    "records_max": int(sizes["records"].max()), "bytes_min": int(sizes["bytes"].min()),
                    "bytes_max": int(sizes["bytes"].max()),
                    "category_deviation_max": round(float(categories["deviation"].abs().max()), 2),
                    "cross_shard_duplicates": leakage.cross_shard_duplicates,
                    "near_duplicate_pairs": sum(counts.near_duplicate_pairs for counts in leakage.pairs.values()),
                    "contaminated_records": sum(contaminated)}
        return tables, headline

    def _indices_file(self, shard: int) -> Path:
        """Where the merged indices of shard ``shard``'s contaminated records are appended (int64 each)."""
        return self._directory / f"{shard}.int64"

    def _indices(self, shard: int) -> Iterator[np.ndarray]:
        """The merged indices of the contaminated records of shard ``shard``, in laid-out order, a batch at a time."""
        if not (path := self._indices_file(shard)).exists():
            return
        with open(path, "rb") as indices:
            while len(batch := np.fromfile(indices, dtype=np.int64, count=INDEX_BATCH)):
                yield batch

    def close(self) -> None:
        self._open.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rows_of(table: pd.DataFrame | list[dict]) -> list[dict]:
    """A table's rows as plain dicts (Python's numbers), for write_json_rows()."""
    return table.to_dict("records") if isinstance(table, pd.DataFrame) else table
