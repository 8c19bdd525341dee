"""A tiny, portable pseudo-random generator (SplitMix64; Steele, Lea & Flood, 2014).

Its output depends on nothing but the seed: not Python's `random` (whose algorithms may change between
versions), the hash seed or the platform. The synthetic sample and the shuffle strategy of the split use it, so
their bytes are the same on every machine, forever.
"""
from __future__ import annotations

from collections.abc import Sequence

_MASK = (1 << 64) - 1


class SplitMix64:
    """A tiny, portable pseudo-random generator (Steele, Lea & Flood, 2014)."""

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        value = self._state
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
        return value ^ (value >> 31)

    def below(self, bound: int) -> int:
        return self.next() % bound

    def choice(self, items: Sequence[str]) -> str:
        return items[self.below(len(items))]

    def weighted(self, items: Sequence[str], weights: Sequence[int]) -> str:
        point = self.below(sum(weights))
        for item, weight in zip(items, weights, strict=True):
            if point < weight:
                return item
            point -= weight
        raise AssertionError("unreachable: point < sum(weights)")
