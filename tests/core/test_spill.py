"""Hash-partitioned spill files, and the duplicate count they give without a lookup per record."""
from __future__ import annotations

import numpy as np
import pytest

from src.core import spill
from src.core.spill import SpillPartitions


@pytest.mark.parametrize("partition_records", [1, 3, 1 << 16])
def test_every_row_of_a_key_is_in_one_partition_in_the_order_added(monkeypatch, partition_records: int) -> None:
    monkeypatch.setattr(spill, "PARTITION_RECORDS", partition_records)
    rows = np.zeros(12, dtype=[("key", "<u8"), ("position", "<i8")])
    rows["key"], rows["position"] = [5, 1, 5, 2, 9, 1, 5, 7, 2, 9, 3, 5], np.arange(12)
    with SpillPartitions(rows.dtype, len(rows)) as partitions:
        partitions.add(rows[:5], rows["key"][:5])
        partitions.add(rows[5:], rows["key"][5:])
        found = list(partitions.partitions())
    assert len(found) == min(12 // partition_records + (12 % partition_records > 0), 256)
    assert sorted(np.concatenate(found)["position"].tolist()) == list(range(12))
    for part in found:
        for key in set(part["key"].tolist()):
            assert part["position"][part["key"] == key].tolist() == \
                rows["position"][rows["key"] == key].tolist()  # all of the key's rows, in order
