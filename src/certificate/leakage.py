"""Leakage across shards: records of different shards whose instruction and input are the same (exact) or nearly
the same (MinHash, src/certificate/near_duplicates.py), counted per pair of shards, with example record indices.

Records are spilled to disk partitioned by prompt digest, and each partition grouped with numpy: a prompt is
identified by its earliest merged record and signed once, and pairs are counted from per-shard group sizes, never
enumerated. Memory stays flat at any size.
"""
from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from src.certificate.near_duplicates import NearDuplicatePairs, prompt_text, signatures
from src.core.config import NearDuplicateParams
from src.core.spill import ScratchTables, SpillPartitions
from src.records.lines import prompt_fields

EXAMPLES_PER_PAIR = 3
# Rows of the per-pair table: all pairs at small shard counts; at large ones, the pairs that leak the most (the
# headline counts always cover every pair). Keeps the git-tracked table and the plots page small at 1,024 shards.
MAX_PAIR_ROWS = 1024
SIGN_BATCH = 2048  # prompts read back and signed at a time
# A spilled record: its prompt's 128-bit digest (two words), shard number, merged index and byte offset.
SPILL_ROW = np.dtype([("high", "<u8"), ("low", "<u8"), ("shard", "<i8"), ("record", "<i8"), ("offset", "<i8")])

Example = tuple[int, int, float]  # merged index in the first shard, in the second, similarity
# Given byte offsets of records, their prompts (src/records/lines.py prompt_bytes), in the same order.
PromptReader = Callable[[Sequence[int]], list[bytes]]


@dataclass
class PairCounts:
    """What leaks between two shards: record pairs with the same instruction and input, near-duplicate record pairs
    (the same included), and the examples of each kind (exact or not) of the earliest prompts."""

    exact_pairs: int = 0
    near_duplicate_pairs: int = 0
    examples: dict[bool, list[tuple[tuple[int, ...], Example]]] = field(
        default_factory=lambda: {True: [], False: []}, repr=False, compare=False)

    def add(self, pairs: int, example: Example, exact: bool, key: tuple[int, ...]) -> None:
        """Count ``pairs`` record pairs; ``example`` is kept if ``key`` is among the EXAMPLES_PER_PAIR smallest."""
        self.near_duplicate_pairs += pairs
        if exact:
            self.exact_pairs += pairs
        examples = self.examples[exact]
        bisect.insort(examples, (key, example))
        del examples[EXAMPLES_PER_PAIR:]


@dataclass(frozen=True)
class Leakage:
    cross_shard_duplicates: int  # records whose instruction and input already appear in an earlier shard
    pairs: dict[tuple[int, int], PairCounts]  # per pair of shard numbers (a < b) that share anything


class LeakageTally(ScratchTables):
    """The prompts of the records written to each shard, and what they share across shards."""

    def __init__(self, params: NearDuplicateParams, read_prompts: PromptReader, records: int) -> None:
        """``records``: about how many records will be added; ``read_prompts`` reads prompts back by offset."""
        super().__init__()
        self.params = params
        self._read_prompts = read_prompts
        self._spill = SpillPartitions(SPILL_ROW, records)
        # A prompt in a shard: the prompt's id, the shard, its records there and the earliest of them.
        self._db.execute("CREATE TABLE presence (id INTEGER, shard INTEGER, records INTEGER, first INTEGER)")

    def add(self, shard: int, records: np.ndarray, offsets: np.ndarray, prompts: np.ndarray) -> None:
        """Count merged records ``records`` (at byte ``offsets`` of the merged file) of shard number ``shard``;
        ``prompts`` are the digests of their instructions and inputs, two 64-bit words each (src/records/index.py)."""
        rows = np.empty(len(records), dtype=SPILL_ROW)
        rows["high"], rows["low"] = prompts[:, 0], prompts[:, 1]
        rows["shard"], rows["record"], rows["offset"] = shard, records, offsets
        self._spill.add(rows, rows["high"])

    def summary(self) -> Leakage:
        """What the shards share, once the last record is added (the slow part: every prompt is signed)."""
        counts: dict[tuple[int, int], PairCounts] = defaultdict(PairCounts)
        with NearDuplicatePairs(self.params, self._spill.rows) as index:
            cross_shard = sum(self._group(rows, counts, index) for rows in self._spill.partitions())
            self._db.execute("CREATE INDEX presence_id ON presence (id, shard)")
            self._db.execute("CREATE TABLE near (first INTEGER, second INTEGER, score REAL)")
            self._db.executemany("INSERT INTO near VALUES (?, ?, ?)", index.pairs())
        # Each near-duplicate pair of prompts with the shards each is in, in one query (not two per pair: at 250,000
        # records of distinct prompts, the per-pair queries alone took 15 s).
        for first, second, score, a, records_a, first_a, b, records_b, first_b in self._db.execute(
                "SELECT near.first, near.second, score, x.shard, x.records, x.first, y.shard, y.records, y.first "
                "FROM near JOIN presence AS x ON x.id = near.first JOIN presence AS y ON y.id = near.second "
                "WHERE x.shard != y.shard"):
            example = (first_a, first_b, score) if a < b else (first_b, first_a, score)
            counts[min(a, b), max(a, b)].add(records_a * records_b, example, False, (first, second, a, b))
        return Leakage(cross_shard, dict(sorted(counts.items())))

    def _group(self, rows: np.ndarray, counts: dict[tuple[int, int], PairCounts], index: NearDuplicatePairs) -> int:
        """Store one spill file's prompts per shard, count their exact pairs and sign each prompt once; return its
        records whose prompt appears in an earlier shard."""
        rows = rows[np.lexsort((rows["record"], rows["shard"], rows["low"], rows["high"]))]
        new_prompt = np.ones(len(rows), dtype=bool)
        new_prompt[1:] = (rows["high"][1:] != rows["high"][:-1]) | (rows["low"][1:] != rows["low"][:-1])
        new_cell = new_prompt.copy()
        new_cell[1:] |= rows["shard"][1:] != rows["shard"][:-1]
        cells = np.flatnonzero(new_cell)  # a cell is a prompt in one shard
        cell_prompts = np.cumsum(new_prompt)[cells] - 1
        shards, firsts, records = rows["shard"][cells], rows["record"][cells], np.diff(np.append(cells, len(rows)))
        prompt_cells = np.flatnonzero(new_prompt[cells])
        ids = np.minimum.reduceat(firsts, prompt_cells)
        self._db.executemany("INSERT INTO presence VALUES (?, ?, ?, ?)",
                             zip(ids[cell_prompts].tolist(), shards.tolist(), records.tolist(), firsts.tolist(),
                                 strict=True))
        # Exact pairs: the cells of each prompt in several shards, two by two.
        bounds = np.append(prompt_cells, len(cells))
        several = np.flatnonzero(np.diff(bounds) > 1)
        for ident, start, stop in zip(ids[several].tolist(), bounds[several].tolist(), bounds[several + 1].tolist(),
                                      strict=True):
            shared = zip(shards[start:stop].tolist(), records[start:stop].tolist(), firsts[start:stop].tolist(),
                         strict=True)
            for (a, records_a, first_a), (b, records_b, first_b) in itertools.combinations(shared, 2):
                counts[a, b].add(records_a * records_b, (first_a, first_b, 1.0), True, (ident,))
        # The offset of each prompt's earliest record: its cell with the smallest first record.
        offsets = rows["offset"][cells][np.lexsort((firsts, cell_prompts))[prompt_cells]]
        for start in range(0, len(ids), SIGN_BATCH):
            prompts = self._read_prompts(offsets[start:start + SIGN_BATCH].tolist())
            index.add(ids[start:start + SIGN_BATCH].tolist(),
                      signatures([prompt_text(prompt_fields(prompt)) for prompt in prompts], self.params))
        return int(records.sum() - records[prompt_cells].sum())

    def close(self) -> None:
        self._spill.close()
        super().close()


def leakage_rows(pairs: dict[tuple[int, int], PairCounts], names: Sequence[str]) -> list[dict]:
    """The per-pair table: one row per pair of shards that share anything, with examples of each kind, in shard
    order; beyond MAX_PAIR_ROWS pairs, the MAX_PAIR_ROWS with the most near-duplicate pairs."""
    kept = sorted(pairs, key=lambda pair: (-pairs[pair].near_duplicate_pairs, pair))[:MAX_PAIR_ROWS]
    return [{"shard_a": names[a], "shard_b": names[b], "exact_pairs": pairs[a, b].exact_pairs,
             "near_duplicate_pairs": pairs[a, b].near_duplicate_pairs,
             "examples": {kind: [{"a": first, "b": second, "similarity": round(score, 3)}
                                 for _, (first, second, score) in pairs[a, b].examples[kind == "exact"]]
                          for kind in ("exact", "near")}}
            for a, b in sorted(kept)]
