"""The on-disk set of digests behind duplicate detection."""
from __future__ import annotations

from collections.abc import Sequence

from src.core.seen import LOOKUP_BATCH, SeenSet
from tests.records_data import digest16


def add(seen: SeenSet, keys: Sequence[bytes]) -> list[bool]:
    return seen.add_digests([digest16(key) for key in keys])


def test_seen_set_tells_new_from_seen_within_a_batch_and_across_batches() -> None:
    with SeenSet() as seen:
        assert add(seen, [b"a", b"b", b"a", b""]) == [True, True, False, True]
        assert add(seen, [b"b", b"c", b"c"]) == [False, True, False]
        assert add(seen, []) == []
        many = [str(n).encode() for n in range(2 * LOOKUP_BATCH + 3)]  # several lookups of one batch
        assert add(seen, many) == [key not in (b"a", b"b", b"c") for key in many]
        assert add(seen, many) == [False] * len(many)

