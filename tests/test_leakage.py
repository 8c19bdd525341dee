"""Leakage between shards: exact and near-duplicate record pairs per pair of shards, counted from group sizes."""
from __future__ import annotations

import pytest

from src.jsonl import prompt_bytes, shard_line
from src.leakage import EXAMPLES_PER_PAIR, MAX_PAIR_ROWS, LeakageTally, PairCounts, leakage_rows
from src.params import NearDuplicateParams

PASSAGE = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(300))
EDITED = PASSAGE[:150] + "。" + PASSAGE[151:]  # a near-duplicate of PASSAGE (Jaccard 0.97)


def prompt(instruction: str, input_: str = "") -> bytes:
    return prompt_bytes(shard_line({"instruction": instruction, "input": input_, "output": "答"}))


# (shard, merged index, prompt): P three times in shard 0, once in 1, twice in 2; its near-duplicate Q once in
# shard 3 and once in shard 0; R alone.
RECORDS = [(0, 0, prompt("要約", PASSAGE)), (0, 1, prompt("要約", PASSAGE)), (0, 2, prompt("別の質問です。")),
           (0, 3, prompt("要約", PASSAGE)), (0, 4, prompt("要約", EDITED)), (1, 5, prompt("要約", PASSAGE)),
           (2, 6, prompt("要約", PASSAGE)), (2, 7, prompt("要約", PASSAGE)), (3, 8, prompt("要約", EDITED))]


@pytest.mark.parametrize("chunk_records", [1, 4, 100])
def test_pairs_per_pair_of_shards_are_counted_from_group_sizes(chunk_records: int) -> None:
    with LeakageTally(NearDuplicateParams(), chunk_records) as tally:
        for shard, record, text in RECORDS:
            tally.add(shard, record, text)
        assert tally.cross_shard_duplicates() == 4  # 5, 6, 7 repeat P of shard 0; 8 repeats Q of shard 0
        rows = leakage_rows(tally.pairs(), ["1_of_4", "2_of_4", "3_of_4", "4_of_4"])
    counts = {(row["shard_a"][0], row["shard_b"][0]): (row["exact_pairs"], row["near_duplicate_pairs"])
              for row in rows}
    assert counts == {
        # exact P-P pairs; near adds P-Q pairs (Q of shard 0 with the P of the other shard, and so on)
        ("1", "2"): (3, 3 + 1), ("1", "3"): (6, 6 + 2), ("1", "4"): (1, 1 + 3),
        ("2", "3"): (2, 2), ("2", "4"): (0, 1), ("3", "4"): (0, 2),
    }
    first = rows[0]
    assert first["examples"]["exact"] == [{"a": 0, "b": 5, "similarity": 1.0}]
    assert [(e["a"], e["b"]) for e in first["examples"]["near"]] == [(4, 5)]
    assert 0.9 <= first["examples"]["near"][0]["similarity"] < 1.0


def test_examples_are_capped_per_pair() -> None:
    with LeakageTally(NearDuplicateParams(), 100) as tally:
        for number in range(EXAMPLES_PER_PAIR + 2):
            tally.add(0, 2 * number, prompt(f"質問{number}"))
            tally.add(1, 2 * number + 1, prompt(f"質問{number}"))
        (row,) = leakage_rows(tally.pairs(), ["1_of_2", "2_of_2"])
    assert row["exact_pairs"] == EXAMPLES_PER_PAIR + 2
    assert [(e["a"], e["b"]) for e in row["examples"]["exact"]] == [(0, 1), (2, 3), (4, 5)]


def test_shards_that_share_nothing_have_no_row() -> None:
    with LeakageTally(NearDuplicateParams(), 10) as tally:
        tally.add(0, 0, prompt("一つ目の質問です。"))
        tally.add(1, 1, prompt("二つ目のまったく違う質問。"))
        assert tally.cross_shard_duplicates() == 0
        assert tally.pairs() == {}


def test_beyond_the_row_cap_the_pairs_that_leak_most_are_kept_in_shard_order() -> None:
    pairs = {(a, a + 1): PairCounts(0, (a * 37) % (MAX_PAIR_ROWS + 10)) for a in range(MAX_PAIR_ROWS + 10)}
    rows = leakage_rows(pairs, [str(n) for n in range(MAX_PAIR_ROWS + 11)])
    assert len(rows) == MAX_PAIR_ROWS
    assert sorted(row["near_duplicate_pairs"] for row in rows) == list(range(10, MAX_PAIR_ROWS + 10))
    assert [int(row["shard_a"]) for row in rows] == sorted(int(row["shard_a"]) for row in rows)
