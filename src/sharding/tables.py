"""Statistics of a sharding: a few headline metrics that mean the same whatever the shard count, and per-shard
detail tables (sizes, category shares, length histograms, leakage between shards, contamination) that dvc.yaml
draws as plots; the last two, with their example and contaminated record indices, are the leakage and
contamination certificate.

Counts accumulate per shard in src/records/stats.py, prompts in src/certificate/leakage.py's on-disk tables,
contaminated record indices in src/certificate/contamination.py. Memory stays flat however many records and shards
there are.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Self

import numpy as np

from src.certificate.contamination import ContaminationTally, EvalSet
from src.certificate.leakage import LeakageTally, leakage_rows
from src.core.config import NearDuplicateParams
from src.core.schema import CATEGORIES
from src.output.files import IntegerChunks
from src.records.lines import read_prompts
from src.records.stats import LENGTH_BINS, RecordStats, length_label

# Records whose texts are hashed at a time (contamination): n-gram hashing holds about 24 bytes per character of
# the chunk, so a chunk this size keeps the split's peak memory low and flat.
TEXT_CHUNK_RECORDS = 512


@dataclass(frozen=True)
class ShardFile:
    """What was written for one shard: its name, range, record count, size and md5."""

    name: str
    start: int
    stop: int
    records: int
    bytes: int
    md5: str


@dataclass(frozen=True)
class Summary:
    """What the split reports: detail tables by name and the headline metrics. The contamination table's indices
    are read from the ShardTally when the table is written (write_json_rows()), so before the tally is closed."""

    tables: dict[str, list[dict]]
    headline: dict[str, int | float]


class ShardTally:
    """Per-shard statistics, prompts and contamination of the records as they are written."""

    def __init__(self, shard_count: int, merged: Path, records: int,
                 near_duplicates: NearDuplicateParams | None = None, eval_set: EvalSet | None = None) -> None:
        """``merged``: the merged file (prompts are read back from it); ``records``: about how many it holds."""
        self.stats = RecordStats(shard_count)
        self.leakage = LeakageTally(near_duplicates or NearDuplicateParams(), partial(read_prompts, merged), records)
        self.contamination = ContaminationTally(eval_set or EvalSet.none(), shard_count, TEXT_CHUNK_RECORDS)

    def add(self, shard: int, records: np.ndarray, rows: np.ndarray, shard_lines: bytes) -> None:
        """Count merged records ``records`` of shard number ``shard`` (0-based): their record index ``rows``
        (src/records/index.py) and their shard lines, one after another."""
        self.stats.add(rows["category"], rows["chars"], shard)
        self.leakage.add(shard, records, rows["offset"], rows["prompt"])
        if self.contamination.active:
            self.contamination.add(shard, records.tolist(), shard_lines.split(b"\n")[:-1])

    def close(self) -> None:
        self.leakage.close()
        self.contamination.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self, shard_files: Callable[[], Sequence[ShardFile]]) -> Summary:
        """``shard_files`` is called once the leakage is summarised (the slow part), so what it waits for (the split's
        hashing of the shards) runs meanwhile."""
        pairs = self.leakage.pairs()
        files = shard_files()
        tables = self.tables(files)
        names = [shard.name for shard in files]
        tables["leakage"] = leakage_rows(pairs, names)
        self.contamination.flush()
        contaminated = self.contamination.counts.tolist()
        tables["contamination"] = [{"shard": name, "records": shard.records, "contaminated": count,
                                    "indices": IntegerChunks(partial(self.contamination.indices, number))}
                                   for number, (name, shard, count) in enumerate(zip(names, files, contaminated,
                                                                                     strict=True))]
        headline = {**self.headline(files, tables["categories"]),
                    "near_duplicate_pairs": sum(counts.near_duplicate_pairs for counts in pairs.values()),
                    "contaminated_records": sum(contaminated)}
        return Summary(tables, headline)

    def tables(self, files: Sequence[ShardFile]) -> dict[str, list[dict]]:
        """The per-shard detail: "shards", "categories" and "lengths" rows, in shard order."""
        stats = self.stats
        stats.flush()
        whole = stats.categories.sum(axis=0)
        total = max(int(whole.sum()), 1)
        shards: list[dict] = []
        categories: list[dict] = []
        lengths: list[dict] = []
        for number, shard in enumerate(files):
            records = max(shard.records, 1)
            mean = {f"mean_chars_{field}": value for field, value in stats.mean_chars(number).items()}
            shards.append({"shard": shard.name, "records": shard.records, "bytes": shard.bytes, "md5": shard.md5,
                           "start": shard.start, "stop": shard.stop,
                           "with_input": int(stats.with_input[number]), **mean})
            for code, category in enumerate(CATEGORIES):
                share = 100 * int(stats.categories[number, code]) / records
                whole_share = 100 * int(whole[code]) / total
                categories.append({"shard": shard.name, "category": category,
                                   "records": int(stats.categories[number, code]), "share": round(share, 2),
                                   "whole_share": round(whole_share, 2),
                                   "deviation": round(share - whole_share, 2)})
            lengths.extend({"shard": shard.name, "bin_start": LENGTH_BINS[bin_number],
                            "chars": length_label(bin_number), "records": int(stats.lengths[number, bin_number])}
                           for bin_number in range(len(LENGTH_BINS)))
        return {"shards": shards, "categories": categories, "lengths": lengths}

    def headline(self, files: Sequence[ShardFile], categories: Sequence[dict]) -> dict[str, int | float]:
        """The metrics `dvc exp show` and `dvc metrics diff` compare across shardings of any count; ``categories``
        is the categories table of tables()."""
        deviations = [abs(row["deviation"]) for row in categories]
        return {
            "shards": len(files),
            "records_min": min(shard.records for shard in files),
            "records_max": max(shard.records for shard in files),
            "bytes_min": min(shard.bytes for shard in files),
            "bytes_max": max(shard.bytes for shard in files),
            "category_deviation_max": round(max(deviations), 2),
            "cross_shard_duplicates": self.leakage.cross_shard_duplicates(),
        }
