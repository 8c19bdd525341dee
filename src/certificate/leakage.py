"""Leakage across shards: records of different shards whose instruction and input are the same (exact) or nearly
the same (MinHash, src/certificate/near_duplicates.py), counted per pair of shards, with example record indices.

As records are written, each one's prompt digest, shard, merged index and byte offset go to spill files on disk
partitioned by digest (src/core/spill.py), a chunk at a time with numpy: no lookup per record. Once the shards are
written, each partition is grouped on its own (all records of a prompt are in the same one): a prompt is
identified by its earliest merged record, repeated prompts are signed and indexed once (their text read back from
the merged file by offset), and pairs are counted from per-shard group sizes, never enumerated, so a prompt that
appears k times costs nothing quadratic in k. Memory stays flat at any size.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from src.certificate.near_duplicates import NearDuplicatePairs, prompt_text, signatures
from src.core.config import NearDuplicateParams
from src.core.spill import SpillPartitions
from src.core.sqlite_scratch import ScratchTables
from src.records.lines import prompt_fields

EXAMPLES_PER_PAIR = 3
# Rows of the per-pair table: all pairs at small shard counts; at large ones, the pairs that leak the most (the
# headline counts always cover every pair). Keeps the git-tracked table and the plots page small at 1,024 shards.
MAX_PAIR_ROWS = 1024
SIGN_BATCH = 2048  # prompts read back and signed at a time
# A spilled record: its prompt's 128-bit digest (two words), shard number, merged index and byte offset.
SPILL_ROW = np.dtype([("high", "<u8"), ("low", "<u8"), ("shard", "<i8"), ("record", "<i8"), ("offset", "<i8")])

Example = tuple[int, int, float]
# Given byte offsets of records, their prompts (src/records/lines.py prompt_bytes), in the same order.
PromptReader = Callable[[Sequence[int]], list[bytes]]


@dataclass
class PairCounts:
    """What leaks between two shards: record pairs with the same instruction and input, near-duplicate record pairs
    (the same included), and a few examples of each kind (merged index in the first shard, in the second,
    similarity): those of the earliest prompts."""

    exact_pairs: int = 0
    near_duplicate_pairs: int = 0
    exact_examples: list[Example] = field(default_factory=list)
    near_examples: list[Example] = field(default_factory=list)
    _example_keys: dict[bool, list[tuple[int, ...]]] = field(default_factory=lambda: {True: [], False: []},
                                                            repr=False, compare=False)

    def add(self, pairs: int, example: Example, exact: bool, key: tuple[int, ...]) -> None:
        """Count ``pairs`` record pairs; ``example`` is kept if ``key`` is among the EXAMPLES_PER_PAIR smallest."""
        self.near_duplicate_pairs += pairs
        if exact:
            self.exact_pairs += pairs
        examples, keys = (self.exact_examples if exact else self.near_examples), self._example_keys[exact]
        if len(keys) == EXAMPLES_PER_PAIR and key >= keys[-1]:
            return
        at = bisect.bisect(keys, key)
        keys.insert(at, key)
        examples.insert(at, example)
        del keys[EXAMPLES_PER_PAIR:], examples[EXAMPLES_PER_PAIR:]


@dataclass(frozen=True)
class _Presence:
    """One spill file grouped: per (prompt, shard) cell, in prompt then shard order, the prompt's id (its earliest
    merged index), the shard, its records there and the earliest of them; and per prompt, its id and offset."""

    ids: np.ndarray
    shards: np.ndarray
    records: np.ndarray
    firsts: np.ndarray
    prompt_ids: np.ndarray
    prompt_offsets: np.ndarray


def _grouped(rows: np.ndarray) -> _Presence:
    rows = rows[np.lexsort((rows["record"], rows["shard"], rows["low"], rows["high"]))]
    new_prompt = np.ones(len(rows), dtype=bool)
    new_prompt[1:] = (rows["high"][1:] != rows["high"][:-1]) | (rows["low"][1:] != rows["low"][:-1])
    new_cell = new_prompt.copy()
    new_cell[1:] |= rows["shard"][1:] != rows["shard"][:-1]
    cells = np.flatnonzero(new_cell)
    cell_prompts = np.cumsum(new_prompt)[cells] - 1
    firsts = rows["record"][cells]
    prompt_cells = np.flatnonzero(new_prompt[cells])
    ids = np.minimum.reduceat(firsts, prompt_cells)
    # The offset of each prompt's earliest record: its cell with the smallest first record.
    earliest = np.lexsort((firsts, cell_prompts))[prompt_cells]
    return _Presence(ids=ids[cell_prompts], shards=rows["shard"][cells],
                     records=np.diff(np.append(cells, len(rows))), firsts=firsts,
                     prompt_ids=ids, prompt_offsets=rows["offset"][cells][earliest])


class LeakageTally(ScratchTables):
    """The prompts of the records written to each shard, and what they share across shards."""

    def __init__(self, params: NearDuplicateParams, read_prompts: PromptReader, records: int) -> None:
        """``records``: about how many records will be added (sizes the spill files); ``read_prompts`` reads the
        prompts of records back by offset."""
        super().__init__()
        self.params = params
        self._read_prompts = read_prompts
        self._spill = SpillPartitions(SPILL_ROW, records)
        self._db.execute("CREATE TABLE presence (id INTEGER, shard INTEGER, records INTEGER, first INTEGER)")
        self._summary: tuple[int, dict[tuple[int, int], PairCounts]] | None = None

    def add(self, shard: int, records: np.ndarray, offsets: np.ndarray, prompts: np.ndarray) -> None:
        """Count merged records ``records`` (at byte ``offsets`` of the merged file) of shard number ``shard``;
        ``prompts`` are the digests of their instructions and inputs, two 64-bit words each (src/records/index.py)."""
        rows = np.empty(len(records), dtype=SPILL_ROW)
        rows["high"], rows["low"] = prompts[:, 0], prompts[:, 1]
        rows["shard"], rows["record"], rows["offset"] = shard, records, offsets
        self._spill.add(rows, rows["high"])

    def cross_shard_duplicates(self) -> int:
        """Records whose instruction and input already appear in an earlier shard."""
        return self._summarised()[0]

    def pairs(self) -> dict[tuple[int, int], PairCounts]:
        """Per pair of shard numbers (a < b) that share anything: what they share."""
        return self._summarised()[1]

    def _summarised(self) -> tuple[int, dict[tuple[int, int], PairCounts]]:
        if self._summary is None:
            self._summary = self._summarise()
        return self._summary

    def _summarise(self) -> tuple[int, dict[tuple[int, int], PairCounts]]:
        counts: dict[tuple[int, int], PairCounts] = defaultdict(PairCounts)
        cross_shard = 0
        with NearDuplicatePairs(self.params, self._spill.rows) as index:
            for rows in self._spill.partitions():
                presence = _grouped(rows)
                cross_shard += self._count_exact(presence, counts)
                self._sign(presence, index)
            self._db.execute("CREATE INDEX presence_id ON presence (id, shard)")
            self._db.execute("CREATE TABLE near (first INTEGER, second INTEGER, score REAL)")
            self._db.executemany("INSERT INTO near VALUES (?, ?, ?)", index.pairs())
        # Each near-duplicate pair of prompts with the shards each is in, in one query (not two per pair: at 250,000
        # records of distinct prompts, the per-pair queries alone took 15 s), in pair then shard order.
        for first, second, score, a, records_a, first_a, b, records_b, first_b in self._db.execute(
                "SELECT near.first, near.second, score, x.shard, x.records, x.first, y.shard, y.records, y.first "
                "FROM near JOIN presence AS x ON x.id = near.first JOIN presence AS y ON y.id = near.second "
                "WHERE x.shard != y.shard ORDER BY near.first, near.second, x.shard, y.shard"):
            example = (first_a, first_b, score) if a < b else (first_b, first_a, score)
            counts[min(a, b), max(a, b)].add(records_a * records_b, example, False, (first, second))
        return cross_shard, dict(sorted(counts.items()))

    def _count_exact(self, presence: _Presence, counts: dict[tuple[int, int], PairCounts]) -> int:
        """Add the exact pairs of one spill file's prompts to ``counts``; return its records whose prompt appears
        in an earlier shard. Keeps the cells of every prompt for the near-duplicate pairs."""
        self._db.executemany("INSERT INTO presence VALUES (?, ?, ?, ?)",
                             zip(presence.ids.tolist(), presence.shards.tolist(), presence.records.tolist(),
                                 presence.firsts.tolist(), strict=True))
        starts = np.flatnonzero(np.diff(presence.ids, prepend=-1))
        cross_shard = int(presence.records.sum() - presence.records[starts].sum())
        spans = np.diff(np.append(starts, len(presence.ids)))
        for start, span in zip(starts[spans > 1].tolist(), spans[spans > 1].tolist(), strict=True):
            ident = int(presence.ids[start])
            cells = list(zip(presence.shards[start:start + span].tolist(),
                             presence.records[start:start + span].tolist(),
                             presence.firsts[start:start + span].tolist(), strict=True))
            for at, (a, records_a, first_a) in enumerate(cells):
                for b, records_b, first_b in cells[at + 1:]:
                    counts[a, b].add(records_a * records_b, (first_a, first_b, 1.0), True, (ident,))
        return cross_shard

    def _sign(self, presence: _Presence, index: NearDuplicatePairs) -> None:
        """Sign each prompt of one spill file once, reading its text back, and index it under its id."""
        for start in range(0, len(presence.prompt_ids), SIGN_BATCH):
            prompts = self._read_prompts(presence.prompt_offsets[start:start + SIGN_BATCH].tolist())
            index.add(presence.prompt_ids[start:start + SIGN_BATCH].tolist(),
                      signatures([prompt_text(prompt_fields(prompt)) for prompt in prompts], self.params))

    def close(self) -> None:
        self._spill.close()
        super().close()


def _examples(examples: list[Example]) -> list[dict]:
    return [{"a": first, "b": second, "similarity": round(score, 3)} for first, second, score in examples]


def leakage_rows(pairs: dict[tuple[int, int], PairCounts], names: Sequence[str]) -> list[dict]:
    """The per-pair table: one row per pair of shards that share anything, with examples of each kind, in shard
    order; beyond MAX_PAIR_ROWS pairs, the MAX_PAIR_ROWS with the most near-duplicate pairs."""
    kept = sorted(pairs, key=lambda pair: (-pairs[pair].near_duplicate_pairs, pair))[:MAX_PAIR_ROWS]
    return [{"shard_a": names[a], "shard_b": names[b], "exact_pairs": pairs[a, b].exact_pairs,
             "near_duplicate_pairs": pairs[a, b].near_duplicate_pairs,
             "examples": {"exact": _examples(pairs[a, b].exact_examples),
                          "near": _examples(pairs[a, b].near_examples)}}
            for a, b in sorted(kept)]
