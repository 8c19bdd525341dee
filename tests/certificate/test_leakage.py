"""Leakage between shards: exact and near-duplicate record pairs per pair of shards, counted from group sizes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from src.certificate.leakage import EXAMPLES_PER_PAIR, MAX_PAIR_ROWS, Leakage, LeakageTally, PairCounts, leakage_rows
from src.core import spill
from src.core.config import NearDuplicateParams
from src.records.lines import prompt_bytes, shard_line
from tests.records_data import digest16 as digest

PASSAGE = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(300))
EDITED = PASSAGE[:150] + "。" + PASSAGE[151:]  # a near-duplicate of PASSAGE (Jaccard 0.97)


def prompt(instruction: str, input_: str = "") -> bytes:
    return prompt_bytes(shard_line({"instruction": instruction, "input": input_, "output": "答"}))


# (shard, merged index, prompt): P three times in shard 0, once in 1, twice in 2; its near-duplicate Q once in
# shard 3 and once in shard 0; R alone.
RECORDS = [(0, 0, prompt("要約", PASSAGE)), (0, 1, prompt("要約", PASSAGE)), (0, 2, prompt("別の質問です。")),
           (0, 3, prompt("要約", PASSAGE)), (0, 4, prompt("要約", EDITED)), (1, 5, prompt("要約", PASSAGE)),
           (2, 6, prompt("要約", PASSAGE)), (2, 7, prompt("要約", PASSAGE)), (3, 8, prompt("要約", EDITED))]


def tally_of(records: list[tuple[int, int, bytes]], chunk_records: int = 100) -> LeakageTally:
    """A tally of ``records`` added ``chunk_records`` at a time; a record's offset is 1000 + its merged index."""
    prompts = {1000 + record: text for _, record, text in records}
    tally = LeakageTally(NearDuplicateParams(), lambda offsets: [prompts[offset] for offset in offsets], len(records))
    for (shard, _), group in itertools.groupby(enumerate(records), key=lambda item: (item[1][0], item[0] // chunk_records)):
        chunk = [record for _, record in group]
        indices = np.array([record for _, record, _ in chunk])
        digests = np.frombuffer(b"".join(digest(text) for _, _, text in chunk), dtype="<u8").reshape(-1, 2)
        tally.add(shard, indices, indices + 1000, digests)
    return tally


@pytest.mark.parametrize("chunk_records, bucket_records", [(1, 1 << 16), (4, 1 << 16), (100, 1), (3, 2)])
def test_pairs_per_pair_of_shards_are_counted_from_group_sizes(monkeypatch, chunk_records: int,
                                                               bucket_records: int) -> None:
    monkeypatch.setattr(spill, "PARTITION_RECORDS", bucket_records)  # spread over several spill files
    with tally_of(RECORDS, chunk_records) as tally:
        leakage = tally.summary()
    assert leakage.cross_shard_duplicates == 4  # 5, 6, 7 repeat P of shard 0; 8 repeats Q of shard 0
    rows = leakage_rows(leakage.pairs, ["1_of_4", "2_of_4", "3_of_4", "4_of_4"])
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


@pytest.mark.parametrize("bucket_records", [1 << 16, 1])
def test_examples_are_capped_per_pair_and_are_the_earliest_prompts(monkeypatch, bucket_records: int) -> None:
    monkeypatch.setattr(spill, "PARTITION_RECORDS", bucket_records)
    records = []
    for number in reversed(range(EXAMPLES_PER_PAIR + 2)):  # later prompts first in the shards
        records += [(0, 2 * number, prompt(f"質問{number}")), (1, 2 * number + 1, prompt(f"質問{number}"))]
    records.sort(key=lambda record: record[0])
    with tally_of(records) as tally:
        (row,) = leakage_rows(tally.summary().pairs, ["1_of_2", "2_of_2"])
    assert row["exact_pairs"] == EXAMPLES_PER_PAIR + 2
    assert [(e["a"], e["b"]) for e in row["examples"]["exact"]] == [(0, 1), (2, 3), (4, 5)]


def test_a_prompt_is_identified_by_its_earliest_record_in_any_shard() -> None:
    # Laid out in another order than merged order (a shuffle): record 9 is in shard 0, record 2 in shard 1.
    records = [(0, 9, prompt("同じ質問")), (0, 4, prompt("別の質問")), (1, 2, prompt("同じ質問")),
               (1, 7, prompt("同じ質問"))]
    with tally_of(records) as tally:
        leakage = tally.summary()
    assert leakage.cross_shard_duplicates == 2
    (row,) = leakage_rows(leakage.pairs, ["1_of_2", "2_of_2"])
    assert (row["exact_pairs"], row["examples"]["exact"]) == (2, [{"a": 9, "b": 2, "similarity": 1.0}])


def test_shards_that_share_nothing_have_no_row() -> None:
    with tally_of([(0, 0, prompt("一つ目の質問です。")), (1, 1, prompt("二つ目のまったく違う質問。"))]) as tally:
        assert tally.summary() == Leakage(cross_shard_duplicates=0, pairs={})


def test_beyond_the_row_cap_the_pairs_that_leak_most_are_kept_in_shard_order() -> None:
    pairs = {(a, a + 1): PairCounts(0, (a * 37) % (MAX_PAIR_ROWS + 10)) for a in range(MAX_PAIR_ROWS + 10)}
    rows = leakage_rows(pairs, [str(n) for n in range(MAX_PAIR_ROWS + 11)])
    assert len(rows) == MAX_PAIR_ROWS
    assert sorted(row["near_duplicate_pairs"] for row in rows) == list(range(10, MAX_PAIR_ROWS + 10))
    assert [int(row["shard_a"]) for row in rows] == sorted(int(row["shard_a"]) for row in rows)
