"""Character n-grams of many texts at once, hashed to 64-bit integers with numpy.

Japanese has no spaces between words, so near-duplicate and contamination checks compare character n-grams. The
hash is plain integer arithmetic on whole chunks of texts: fast, and the same on every machine.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_PAD = 0xFFFFFFFF  # not a code point: pads each text, so no n-gram spans two texts
_MULTIPLIER = np.uint64(0x100000001B3)


def ngram_hashes(texts: Sequence[str], n: int, short_whole: bool) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets): the hashes of every character n-gram of every text, flat, text k's being
    hashes[offsets[k]:offsets[k + 1]]. A text shorter than n has none, or with ``short_whole`` (if not empty) one
    token for its whole text, so a short prompt still has a signature."""
    pad = _PAD.to_bytes(4, "little") * (n - 1)
    encoded = b"".join(text.encode("utf-32-le", "surrogatepass") + pad for text in texts)
    code_points = np.frombuffer(encoded, dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
    starts = np.concatenate(([0], np.cumsum(lengths + n - 1)[:-1])).astype(np.int64)
    counts = np.maximum(lengths - n + 1, 0)
    if short_whole:
        counts = np.where((lengths > 0) & (lengths < n), 1, counts)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.uint64)
    # The polynomial hash of the n code points from every position of the padded text, then the valid ones.
    span = len(code_points) - n + 1
    hashes = code_points[:span].copy()
    for shift in range(1, n):
        hashes *= _MULTIPLIER
        hashes += code_points[shift:shift + span]
    hashes = hashes[np.repeat(starts - offsets[:-1].astype(np.int64), counts) + np.arange(int(offsets[-1]))]
    # SplitMix64's finalizer spreads the polynomial hash over all 64 bits.
    hashes ^= hashes >> np.uint64(30)
    hashes *= np.uint64(0xBF58476D1CE4E5B9)
    hashes ^= hashes >> np.uint64(27)
    hashes *= np.uint64(0x94D049BB133111EB)
    return hashes ^ (hashes >> np.uint64(31)), offsets
