"""Leakage across shards: records of different shards whose instruction and input are the same (exact) or nearly
the same (MinHash, src/near_duplicates.py), counted per pair of shards, with example record indices.

Records are grouped by their exact instruction and input (a digest) as they are written, so a prompt repeated many
times is signed and indexed once; pairs are then counted from per-shard group sizes, never enumerated, so a prompt
that appears k times costs nothing quadratic in k. Every table is on disk (SQLite): memory stays flat.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from .jsonl import prompt_fields
from .near_duplicates import NearDuplicateIndex, prompt_text, signatures
from .params import NearDuplicateParams
from .seen import ScratchTables, digest

EXAMPLES_PER_PAIR = 3
# Rows of the per-pair table: all pairs at small shard counts; at large ones, the pairs that leak the most (the
# headline counts always cover every pair). Keeps the git-tracked table and the plots page small at 1,024 shards.
MAX_PAIR_ROWS = 1024


@dataclass
class PairCounts:
    """What leaks between two shards: record pairs with the same instruction and input, near-duplicate record pairs
    (the same included), and a few examples of each kind (merged index in the first shard, in the second,
    similarity)."""

    exact_pairs: int = 0
    near_duplicate_pairs: int = 0
    exact_examples: list[tuple[int, int, float]] = field(default_factory=list)
    near_examples: list[tuple[int, int, float]] = field(default_factory=list)

    def add(self, pairs: int, example: tuple[int, int, float], exact: bool) -> None:
        self.near_duplicate_pairs += pairs
        if exact:
            self.exact_pairs += pairs
        examples = self.exact_examples if exact else self.near_examples
        if len(examples) < EXAMPLES_PER_PAIR:
            examples.append(example)


class LeakageTally(ScratchTables):
    """The prompts of the records written to each shard, and what they share across shards."""

    def __init__(self, params: NearDuplicateParams, chunk_records: int) -> None:
        super().__init__()
        self.params = params
        self._chunk_records = chunk_records
        self._pending: list[tuple[int, int, bytes]] = []
        self._db.execute("CREATE TABLE prompt (digest BLOB PRIMARY KEY, id INTEGER) WITHOUT ROWID")
        self._db.execute("CREATE TABLE record (id INTEGER, shard INTEGER, record INTEGER)")
        self._prompts = 0
        self._index = NearDuplicateIndex(params)

    def add(self, shard: int, record: int, prompt: bytes) -> None:
        """Count merged record ``record`` of shard number ``shard``; ``prompt`` is its JSON-encoded instruction
        and input (src/jsonl.py prompt_bytes)."""
        self._pending.append((shard, record, prompt))
        if len(self._pending) >= self._chunk_records:
            self._flush()

    def _flush(self) -> None:
        digests = [digest(prompt) for _, _, prompt in self._pending]
        known: dict[bytes, int] = dict(self.select_in("SELECT digest, id FROM prompt WHERE digest IN",
                                                      list(dict.fromkeys(digests))))
        new: dict[bytes, int] = {}
        new_texts: list[str] = []
        for prompt_digest, (_, _, prompt) in zip(digests, self._pending, strict=True):
            if prompt_digest not in known:
                known[prompt_digest] = new[prompt_digest] = self._prompts
                new_texts.append(prompt_text(prompt_fields(prompt)))
                self._prompts += 1
        self._db.executemany("INSERT INTO prompt VALUES (?, ?)", new.items())
        if new:
            self._index.add(list(new.values()), signatures(new_texts, self.params))
        self._db.executemany("INSERT INTO record VALUES (?, ?, ?)",
                             ((known[prompt_digest], shard, record) for prompt_digest, (shard, record, _) in
                              zip(digests, self._pending, strict=True)))
        self._pending = []

    def cross_shard_duplicates(self) -> int:
        """Records whose instruction and input already appear in an earlier shard."""
        self._flush()
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM record JOIN (SELECT id, MIN(shard) AS first FROM record GROUP BY id) "
            "USING (id) WHERE shard > first").fetchone()
        return int(count)

    def _presence(self, ident: int) -> list[tuple[int, int, int]]:
        """(shard, records, first merged index) of prompt ``ident``, by shard."""
        return self._db.execute("SELECT shard, records, first FROM presence WHERE id = ? ORDER BY shard",
                                (ident,)).fetchall()

    def pairs(self) -> dict[tuple[int, int], PairCounts]:
        """Per pair of shard numbers (a < b) that share anything: what they share."""
        self._flush()
        self._db.execute("CREATE TABLE presence AS SELECT id, shard, COUNT(*) AS records, MIN(record) AS first "
                         "FROM record GROUP BY id, shard")
        self._db.execute("CREATE INDEX presence_id ON presence (id)")
        counts: dict[tuple[int, int], PairCounts] = defaultdict(PairCounts)
        repeated = self._db.execute(
            "SELECT id, shard, records, first FROM presence WHERE id IN "
            "(SELECT id FROM presence GROUP BY id HAVING COUNT(*) > 1) ORDER BY id, shard")
        for _, rows in itertools.groupby(repeated, key=lambda row: row[0]):
            for (_, a, records_a, first_a), (_, b, records_b, first_b) in itertools.combinations(rows, 2):
                counts[a, b].add(records_a * records_b, (first_a, first_b, 1.0), exact=True)
        for first, second, score in self._index.pairs():
            for (a, records_a, first_a), (b, records_b, first_b) in itertools.product(
                    self._presence(first), self._presence(second)):
                if a == b:
                    continue
                example = (first_a, first_b, score) if a < b else (first_b, first_a, score)
                counts[min(a, b), max(a, b)].add(records_a * records_b, example, exact=False)
        return dict(sorted(counts.items()))

    def close(self) -> None:
        self._index.close()
        super().close()


def _examples(examples: list[tuple[int, int, float]]) -> list[dict]:
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
