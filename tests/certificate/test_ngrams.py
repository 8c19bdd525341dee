"""Character n-gram hashes: the same n-gram hashes the same in any text, no n-gram spans two texts."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from src.certificate.ngrams import ngram_hashes


def test_each_text_gets_its_n_grams_and_equal_n_grams_hash_equal() -> None:
    hashes, offsets = ngram_hashes(["abcdef", "xbcdef", "日本語の文"], 5, short_whole=False)
    assert offsets.tolist() == [0, 2, 4, 5]
    assert hashes[1] == hashes[3]  # "bcdef" in both
    assert len(set(hashes[[0, 1, 2, 4]].tolist())) == 4


def test_short_texts_get_one_whole_text_token_only_when_asked() -> None:
    assert ngram_hashes(["ab", "", "abcde"], 5, short_whole=False)[1].tolist() == [0, 0, 0, 1]
    hashes, offsets = ngram_hashes(["ab", "", "abcde", "ab"], 5, short_whole=True)
    assert offsets.tolist() == [0, 1, 1, 2, 3]
    assert hashes[0] == hashes[2] != hashes[1]


@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=6), st.integers(1, 4))
def test_hashes_match_those_of_each_n_gram_alone(texts: list[str], n: int) -> None:
    hashes, offsets = ngram_hashes(texts, n, short_whole=False)
    for k, text in enumerate(texts):
        grams = [text[i:i + n] for i in range(len(text) - n + 1)]
        alone = [int(ngram_hashes([gram], n, short_whole=False)[0][0]) for gram in grams]
        assert hashes[offsets[k]:offsets[k + 1]].tolist() == alone
    assert hashes.dtype == np.uint64
