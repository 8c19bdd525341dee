"""Statistics of a sharding: a few headline metrics that mean the same whatever the shard count, and per-shard
detail tables (sizes, category shares, length histograms) that dvc.yaml draws as plots.

Counts accumulate per shard in src/stats.py; prompts go to an on-disk SQLite table. Memory stays flat however
many records and shards there are.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from .schema import CATEGORIES
from .seen import scratch_database
from .stats import CHUNK_RECORDS, LENGTH_BINS, RecordStats, length_label


@dataclass(frozen=True)
class ShardFile:
    """What was written for one shard: its name, range, record count, size and md5."""

    name: str
    start: int
    stop: int
    records: int
    bytes: int
    md5: str


class ShardTally:
    """Per-shard statistics and prompts of the records as they are written."""

    def __init__(self, shard_count: int) -> None:
        self.stats = RecordStats(shard_count)
        self._pending_prompts: list[tuple[bytes, int]] = []
        self._prompts = scratch_database()
        self._prompts.execute("CREATE TABLE prompt (digest BLOB, shard INTEGER)")

    def add(self, shard: int, category: str, chars: Sequence[int], prompt: bytes) -> None:
        """Count one record of shard number ``shard`` (0-based); ``prompt`` identifies its instruction and input."""
        self.stats.add(category, chars, shard)
        self._pending_prompts.append((hashlib.blake2b(prompt, digest_size=16).digest(), shard))
        if len(self._pending_prompts) >= CHUNK_RECORDS:
            self._flush_prompts()

    def _flush_prompts(self) -> None:
        self._prompts.executemany("INSERT INTO prompt VALUES (?, ?)", self._pending_prompts)
        self._pending_prompts = []

    def cross_shard_duplicates(self) -> int:
        """Records whose instruction and input already appear in an earlier shard."""
        self._flush_prompts()
        (count,) = self._prompts.execute(
            "SELECT COUNT(*) FROM prompt JOIN (SELECT digest, MIN(shard) AS first FROM prompt GROUP BY digest) "
            "USING (digest) WHERE shard > first").fetchone()
        return int(count)

    def close(self) -> None:
        self._prompts.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            "cross_shard_duplicates": self.cross_shard_duplicates(),
        }
