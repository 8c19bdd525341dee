"""Split strategies: the order in which the merged records are laid out before the ranges of params.yaml cut it.

- contiguous: merged order (the split streams it; no order is computed);
- stratified: each segment (a shard, or a gap left out) gets every category in proportion to the whole, within
  one record, and keeps its records in merged order;
- shuffle: a permutation from a seed, by Fisher-Yates over SplitMix64, so the same seed gives the same order on
  every machine and Python or numpy version.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from src.core.splitmix import SplitMix64


def segments(ranges: Sequence[tuple[int, int]], records: int) -> list[tuple[int, int]]:
    """The shards' [start, stop) ranges with the gaps between and after them, covering 0..records in order."""
    cuts, position = [], 0
    for start, stop in ranges:
        if start > position:
            cuts.append((position, start))
        cuts.append((start, stop))
        position = stop
    if position < records:
        cuts.append((position, records))
    return cuts


def stratified_quotas(sizes: Sequence[int], counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """quotas[k][j]: how many records of category j segment k takes. Row sums are ``sizes`` and column sums are
    ``counts``, and every quota is within one record of the proportional share sizes[k] * counts[j] / total.

    Each quota is its share rounded down, plus one where needed: a row needs what its floors miss, and rows take
    their extra records from the categories that still need the most (Ryser's greedy construction of a 0-1 matrix
    with given margins, which the fractional parts show to exist).
    """
    sizes_array, counts_array = np.array(sizes, dtype=np.int64), np.array(counts, dtype=np.int64)
    quotas = np.outer(sizes_array, counts_array) // max(int(counts_array.sum()), 1)
    column_need = counts_array - quotas.sum(axis=0)
    for k, row_need in enumerate(sizes_array - quotas.sum(axis=1)):
        chosen = sorted(range(len(counts)), key=lambda j: (-column_need[j], j))[:row_need]
        quotas[k, chosen] += 1
        column_need[chosen] -= 1
    return quotas


def stratified_order(categories: np.ndarray, ranges: Sequence[tuple[int, int]], category_count: int) -> np.ndarray:
    """Merged indices in stratified order: each segment's records (the earliest of each category not yet taken),
    in merged order."""
    cuts = segments(ranges, len(categories))
    quotas = stratified_quotas([stop - start for start, stop in cuts],
                               np.bincount(categories, minlength=category_count))
    segment_of = np.empty(len(categories), dtype=np.int64)
    for j in range(category_count):
        members = np.flatnonzero(categories == j)
        segment_of[members] = np.repeat(np.arange(len(cuts)), quotas[:, j])
    return np.argsort(segment_of, kind="stable")


def shuffled_order(records: int, seed: int) -> np.ndarray:
    """A permutation of 0..records-1 drawn from ``seed`` (Fisher-Yates)."""
    order = np.arange(records, dtype=np.int64)
    rng = SplitMix64(seed)
    for last in range(records - 1, 0, -1):
        other = rng.below(last + 1)
        order[last], order[other] = order[other], order[last]
    return order
