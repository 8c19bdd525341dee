"""The on-disk set of digests behind duplicate detection."""
from __future__ import annotations

from src.jsonl import prompt_bytes, shard_line
from src.seen import LOOKUP_BATCH, SeenSet


def test_seen_set_tells_new_from_seen_within_a_batch_and_across_batches() -> None:
    with SeenSet() as seen:
        assert seen.add_all([b"a", b"b", b"a", b""]) == [True, True, False, True]
        assert seen.add_all([b"b", b"c", b"c"]) == [False, True, False]
        assert seen.add_all([]) == []
        many = [str(n).encode() for n in range(2 * LOOKUP_BATCH + 3)]  # several lookups of one batch
        assert seen.add_all(many) == [key not in (b"a", b"b", b"c") for key in many]
        assert seen.add_all(many) == [False] * len(many)


def test_prompts_that_a_separator_would_confuse_are_distinct_keys() -> None:
    """Instruction and input were once joined with "\x00", so these were one key and merging dropped a distinct
    record; keys are now the prompt's JSON encoding."""
    pairs = [(("問\x00", "x"), ("問", "\x00x")), (("a", ""), ("", "a")), (("ab", ""), ("a", "b"))]
    for first, second in pairs:
        keys = [prompt_bytes(shard_line({"instruction": i, "input": n, "output": ""})) for i, n in (first, second)]
        with SeenSet() as seen:
            assert seen.add_all(keys + keys) == [True, True, False, False], (first, second)
