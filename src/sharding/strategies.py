"""Split strategies: the order of the merged records before the ranges cut it (contiguous needs none)."""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from src.core.splitmix import SplitMix64


def segments(ranges: Sequence[tuple[int, int]], records: int) -> list[tuple[int, int]]:
    """The shards' ranges (non-empty, ordered, disjoint) and the gaps around them, covering 0..records in order."""
    return list(itertools.pairwise(sorted({0, records, *itertools.chain.from_iterable(ranges)})))


def stratified_quotas(sizes: Sequence[int], counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """quotas[k][j]: how many records of category j segment k takes. Rows sum to ``sizes``, columns to ``counts``,
    and each quota is its proportional share rounded down or up: rows take their missing records from the
    categories that still need the most (Ryser's greedy construction of a 0-1 matrix with given margins)."""
    sizes_array, counts_array = np.array(sizes, dtype=np.int64), np.array(counts, dtype=np.int64)
    quotas = np.outer(sizes_array, counts_array) // max(int(counts_array.sum()), 1)
    column_need = counts_array - quotas.sum(axis=0)
    for k, row_need in enumerate(sizes_array - quotas.sum(axis=1)):
        chosen = np.argsort(-column_need, kind="stable")[:row_need]
        quotas[k, chosen] += 1
        column_need[chosen] -= 1
    return quotas


def stratified_order(categories: np.ndarray, ranges: Sequence[tuple[int, int]], category_count: int) -> np.ndarray:
    """Merged indices: each segment takes the earliest records of each category not yet taken, in merged order."""
    cuts = segments(ranges, len(categories))
    quotas = stratified_quotas([stop - start for start, stop in cuts],
                               np.bincount(categories, minlength=category_count))
    segment_of = np.empty(len(categories), dtype=np.int64)
    for j in range(category_count):
        segment_of[categories == j] = np.repeat(np.arange(len(cuts)), quotas[:, j])
    return np.argsort(segment_of, kind="stable")


def shuffled_order(records: int, seed: int) -> np.ndarray:
    """A permutation of 0..records-1 by Fisher-Yates over SplitMix64: the same on every machine and version."""
    order = np.arange(records, dtype=np.int64)
    rng = SplitMix64(seed)
    for last in range(records - 1, 0, -1):
        other = rng.below(last + 1)
        order[last], order[other] = order[other], order[last]
    return order
