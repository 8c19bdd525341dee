"""What a split reports: one row per record written to a shard, kept in a DuckDB table as the shards are written;
from it, the per-shard tables (sizes, category shares, length histograms: pandas) and the leakage and contamination
certificate (src/certificate/), and the headline metrics, which mean the same whatever the shard count.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import duckdb
import numpy as np
import pandas as pd

from src.certificate.contamination import EvalSet
from src.certificate.leakage import PromptReader, leakage_rows, summarise_leakage
from src.core.config import NearDuplicateParams
from src.core.schema import CATEGORIES
from src.core.scratch import insert
from src.output.files import IntegerChunks
from src.records.stats import (
    LENGTH_BINS,
    STATS_COLUMNS,
    TEXT_FIELDS,
    group_stats,
    length_label,
    mean_chars,
    stats_columns,
)
from src.sharding.writer import ShardPiece

TABLE = "shard_records"
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
    """The records written to each shard, one row each in table TABLE of ``database``: laid-out position, merged
    index, shard, byte offset, prompt digest, category, characters, and whether it shares text with ``eval_set``."""

    def __init__(self, database: duckdb.DuckDBPyConnection, eval_set: EvalSet) -> None:
        self.database, self.eval_set = database, eval_set
        database.execute(f'CREATE TABLE {TABLE} (position BIGINT, record BIGINT, shard INTEGER, "offset" UBIGINT, '
                         f"prompt_hi UBIGINT, prompt_lo UBIGINT, {STATS_COLUMNS}, contaminated BOOLEAN)")

    def add(self, piece: ShardPiece) -> None:
        rows = piece.rows
        columns = {"position": np.arange(piece.position, piece.position + len(rows)), "record": piece.records,
                   "shard": np.full(len(rows), piece.shard, dtype=np.int32), "offset": rows["offset"],
                   "prompt_hi": rows["prompt"][:, 0], "prompt_lo": rows["prompt"][:, 1], **stats_columns(rows),
                   "contaminated": self.eval_set.contaminated(piece.lines)}
        insert(self.database, TABLE, columns)

    def tables(self, files: Sequence[ShardFile], near_duplicates: NearDuplicateParams,
               read_prompts: PromptReader) -> tuple[dict[str, pd.DataFrame | list[dict]], dict[str, int | float]]:
        """The detail tables by name (the per-shard ones as DataFrames, the certificate's as rows), and the
        headline metrics."""
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
        leakage = summarise_leakage(self.database, TABLE, near_duplicates, read_prompts)
        tables = {"shards": shards, "categories": categories, "lengths": lengths,
                  "leakage": leakage_rows(leakage.pairs, names),
                  "contamination": [{"shard": name, "records": shard.records, "contaminated": int(count),
                                     "indices": IntegerChunks(partial(self._contaminated, number))}
                                    for number, (name, shard, count) in enumerate(zip(names, files, contaminated,
                                                                                      strict=True))]}
        headline = {"shards": len(files), "records_min": int(sizes["records"].min()),
                    "records_max": int(sizes["records"].max()), "bytes_min": int(sizes["bytes"].min()),
                    "bytes_max": int(sizes["bytes"].max()),
                    "category_deviation_max": round(float(categories["deviation"].abs().max()), 2),
                    "cross_shard_duplicates": leakage.cross_shard_duplicates,
                    "near_duplicate_pairs": sum(counts.near_duplicate_pairs for counts in leakage.pairs.values()),
                    "contaminated_records": int(contaminated.sum())}
        return tables, headline

    def _contaminated(self, shard: int) -> Iterator[np.ndarray]:
        """The merged indices of the contaminated records of shard ``shard``, in laid-out order, a batch at a time."""
        result = self.database.cursor().execute(
            f"SELECT record FROM {TABLE} WHERE shard = ? AND contaminated ORDER BY position", [shard])
        while len(batch := result.fetch_df_chunk(INDEX_BATCH)):
            yield batch["record"].to_numpy()


def rows_of(table: pd.DataFrame | list[dict]) -> list[dict]:
    """A table's rows as plain dicts (Python's numbers), for write_json_rows()."""
    return table.to_dict("records") if isinstance(table, pd.DataFrame) else table
