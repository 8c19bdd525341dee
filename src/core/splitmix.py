"""SplitMix64 (Steele, Lea & Flood, 2014): a pseudo-random generator whose output depends on the seed alone (not on
Python's `random`, the hash seed or the platform), so the synthetic sample and the shuffle are the same forever."""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

_MASK = (1 << 64) - 1


class SplitMix64:
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
        """An item, each as likely as its weight: the first whose running total of weights exceeds the draw."""
        totals = list(accumulate(weights))
        return items[bisect_right(totals, self.below(totals[-1]))]
