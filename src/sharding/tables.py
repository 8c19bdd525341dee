"""What a split reports: one row per record written to a shard, kept in Parquet files that DuckDB reads as the
shards are written; from them, the per-shard tables (sizes, category shares, length histograms: pandas) and the
contamination certificate; from the records' prompts, the leakage certificate (src/certificate/); and the headline
metrics, which mean the same whatever the shard count.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Self

import duckdb
import numpy as np
import pandas as pd

from src.certificate.contamination import EvalSet
from src.certificate.leakage import LeakageTally, PromptReader, leakage_rows
from src.core.config import NearDuplicateParams
from src.core.schema import CATEGORIES
from src.core.scratch import registered
from src.output.files import IntegerChunks
from src.records.stats import (
    LENGTH_BINS,
    TEXT_FIELDS,
    group_stats,
    length_label,
    mean_chars,
    stats_columns,
)
from src.sharding.writer import ShardPiece

TABLE = "shard_records"
PART_RECORDS = 1 << 16  # rows written to one Parquet file
INDEX_BATCH = 32  # DuckDB vectors (2,048 rows each) of contaminated indices fetched at a time


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
    """The records written to each shard, one row each: laid-out position, merged index, shard, category,
    characters, and whether it shares text with ``eval_set``. The rows go to Parquet files in a temporary directory,
    PART_RECORDS at a time, read by DuckDB as view TABLE of ``database``: a table of the database would grow to its
    memory limit, files take none. Their prompts go to a LeakageTally."""

    def __init__(self, database: duckdb.DuckDBPyConnection, eval_set: EvalSet, near_duplicates: NearDuplicateParams,
                 read_prompts: PromptReader, records: int) -> None:
        """``read_prompts`` reads prompts back from the merged file; ``records``: about how many will be added."""
        self.database, self.eval_set = database, eval_set
        self._open = ExitStack()
        self._leakage = self._open.enter_context(LeakageTally(near_duplicates, read_prompts, records))
        self._directory = self._open.enter_context(tempfile.TemporaryDirectory(prefix="shard-records-"))
        self._pending: list[dict[str, np.ndarray]] = []
        self._parts = 0

    def add(self, piece: ShardPiece) -> None:
        rows = piece.rows
        self._leakage.add(piece.shard, piece.records, rows["offset"], rows["prompt"])
        self._pending.append({"position": np.arange(piece.position, piece.position + len(rows)),
                              "record": piece.records, "shard": np.full(len(rows), piece.shard, dtype=np.int32),
                              **stats_columns(rows), "contaminated": self.eval_set.contaminated(piece.lines)})
        if sum(len(columns["record"]) for columns in self._pending) >= PART_RECORDS:
            self._write_part()

    def _write_part(self) -> None:
        columns = {name: np.concatenate([pending[name] for pending in self._pending]) for name in self._pending[0]}
        self._pending.clear()
        path = str(Path(self._directory) / f"{self._parts}.parquet").replace("'", "''")  # quoted in SQL
        with registered(self.database, "new_rows", columns):
            self.database.execute(f"COPY new_rows TO '{path}' (FORMAT parquet)")
        self._parts += 1

    def _view(self) -> None:
        """Make TABLE the rows added, once the last is added (a split writes at least one)."""
        if self._pending:
            self._write_part()
        files = str(Path(self._directory) / "*.parquet").replace("'", "''")
        self.database.execute(f"CREATE OR REPLACE VIEW {TABLE} AS FROM read_parquet('{files}')")

    def tables(self, files: Sequence[ShardFile]) -> tuple[dict[str, pd.DataFrame | list[dict]],
                                                          dict[str, int | float]]:
        """The detail tables by name (the per-shard ones as DataFrames, the certificate's as rows), and the
        headline metrics; once the last record is added."""
        self._view()
        names = [shard.name for shard in files]
        stats = group_stats(self.database, TABLE, "shard").df().set_index("grp").reindex(range(len(files)),
                                                                                           fill_value=0)
        sizes = pd.DataFrame([shard.__dict__ for shard in files]).rename(columns={"name": "shard"})
        shards = sizes[["shard", "records", "bytes", "md5", "start", "stop"]].assign(
            with_input=stats["with_input"].to_numpy(),
            **{f"mean_chars_{field}": [mean_chars(row)[field] for _, row in stats.iterrows()] for field in TEXT_FIELDS})
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
            "chars": np.tile([length_label(number) for number in range(len(LENGTH_BINS))], len(names)),
            "records": stats[[length_label(number) for number in range(len(LENGTH_BINS))]].to_numpy().ravel()})
        contaminated = self.database.sql(f"SELECT shard, count(*) AS contaminated FROM {TABLE} WHERE contaminated "
                                         "GROUP BY shard").df().set_index("shard")["contaminated"]
        contaminated = contaminated.reindex(range(len(files)), fill_value=0)
        pairs = self._leakage.pairs()
        tables = {"shards": shards, "categories": categories, "lengths": lengths,
                  "leakage": leakage_rows(pairs, names),
                  "contamination": [{"shard": name, "records": shard.records, "contaminated": int(count),
                                     "indices": IntegerChunks(partial(self._contaminated, number))}
                                    for number, (name, shard, count) in enumerate(zip(names, files, contaminated,
                                                                                      strict=True))]}
        headline = {"shards": len(files), "records_min": int(sizes["records"].min()),
                    "records_max": int(sizes["records"].max()), "bytes_min": int(sizes["bytes"].min()),
                    "bytes_max": int(sizes["bytes"].max()),
                    "category_deviation_max": round(float(categories["deviation"].abs().max()), 2),
                    "cross_shard_duplicates": self._leakage.cross_shard_duplicates(),
                    "near_duplicate_pairs": sum(counts.near_duplicate_pairs for counts in pairs.values()),
                    "contaminated_records": int(contaminated.sum())}
        return tables, headline

    def _contaminated(self, shard: int) -> Iterator[np.ndarray]:
        """The merged indices of the contaminated records of shard ``shard``, in laid-out order, a batch at a time."""
        result = self.database.cursor().execute(
            f"SELECT record FROM {TABLE} WHERE shard = ? AND contaminated ORDER BY position", [shard])
        while len(batch := result.fetch_df_chunk(INDEX_BATCH)):
            yield batch["record"].to_numpy()

    def close(self) -> None:
        self._open.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rows_of(table: pd.DataFrame | list[dict]) -> list[dict]:
    """A table's rows as plain dicts (Python's numbers), for write_json_rows()."""
    return table.to_dict("records") if isinstance(table, pd.DataFrame) else table
