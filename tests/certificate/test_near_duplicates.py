"""MinHash signatures (rensa) over character n-grams, and the on-disk LSH index."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.certificate import near_duplicates
from src.certificate.near_duplicates import (
    NearDuplicateIndex,
    NearDuplicatePairs,
    band_keys,
    prompt_text,
    signatures,
    similarity,
)
from src.core.config import NearDuplicateParams

PARAMS = NearDuplicateParams()  # 5-grams, 128 permutations in 16 bands, threshold 0.8
PASSAGE = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(300))
EDITED = PASSAGE[:150] + "。" + PASSAGE[151:]  # Jaccard 291/301 = 0.97 with PASSAGE
HALF = PASSAGE[:150]  # Jaccard 146/296 = 0.49 with PASSAGE


def test_signatures_are_pinned_so_the_metrics_mean_the_same_everywhere() -> None:
    # rensa's algorithm and the seed are fixed with its pinned version; a change here changes every leakage count.
    rows = signatures(["富士山は日本一高い山です。"], PARAMS)
    assert rows.shape == (1, 128) and rows.dtype == np.uint32
    assert rows[0, :4].tolist() == [3369856123, 3337290455, 3370470432, 3368887096]


def test_similarity_estimates_jaccard_of_character_n_grams() -> None:
    passage, edited, half = signatures([PASSAGE, EDITED, HALF], PARAMS)
    assert similarity(passage, passage.tobytes()) == 1.0
    assert 0.9 <= similarity(passage, edited) < 1.0
    assert 0.35 <= similarity(passage, half) <= 0.65


def test_equal_bands_give_equal_keys_and_bands_differ_by_position() -> None:
    rows = signatures([PASSAGE, PASSAGE], PARAMS)
    rows[1, :8] += 1  # only the first band differs
    keys = band_keys(rows, PARAMS)
    assert keys.shape == (2, 16) and keys.dtype == np.int64
    assert keys[0, 0] != keys[1, 0] and keys[0, 1:].tolist() == keys[1, 1:].tolist()
    same_values = np.tile(rows[:1, :8], (1, 16))  # every band holds the same values
    assert len(set(band_keys(same_values, PARAMS)[0].tolist())) == 16


def test_the_index_finds_near_duplicate_pairs_and_earlier_similar_records() -> None:
    texts = [PASSAGE, HALF, "まったく別の質問です。", EDITED, PASSAGE]
    with NearDuplicateIndex(PARAMS) as index:
        rows = signatures(texts, PARAMS)
        index.add([0, 1, 2], rows[:3])
        assert index.similar_to(rows[3]) == 0
        assert index.similar_to(signatures(["これも別の話題についての質問。"], PARAMS)[0]) is None
        index.add([3, 4], rows[3:])
        assert index.similar_to(rows[4]) == 0


def test_all_near_duplicate_pairs_are_found_whatever_order_the_ids_come_in() -> None:
    texts = [PASSAGE, HALF, "まったく別の質問です。", EDITED, PASSAGE]
    with NearDuplicatePairs(PARAMS, 5) as index:
        rows = signatures(texts, PARAMS)
        index.add([30, 1, 2], rows[[3, 1, 2]])
        index.add([4, 0], rows[[4, 0]])
        found = sorted(index.pairs())
    assert [(a, b) for a, b, _ in found] == [(0, 4), (0, 30), (4, 30)]
    assert found[0][2] == 1.0 and all(0.9 <= score < 1.0 for _, _, score in found[1:])


@pytest.mark.parametrize("threshold, pairs", [(0.3, [(0, 1), (0, 2), (1, 2)]), (1.0, [(0, 2)])])
def test_the_threshold_decides_which_candidates_are_pairs(threshold: float, pairs: list[tuple[int, int]]) -> None:
    params = NearDuplicateParams(threshold=threshold, bands=64)  # 2 values per band: half-similar pairs collide
    with NearDuplicatePairs(params, 3) as index:
        index.add([0, 1, 2], signatures([PASSAGE, HALF, PASSAGE], params))
        assert sorted((a, b) for a, b, _ in index.pairs()) == pairs


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.lists(st.integers(0, 2), min_size=8, max_size=8), min_size=0, max_size=60),
       batch=st.integers(1, 50), score_batch=st.integers(1, 50), ids=st.randoms())
def test_pairs_are_exactly_those_that_share_a_band_and_reach_the_threshold(values, batch, score_batch, ids) -> None:
    """Against the definition, pair by pair: tiny signatures (8 values of 0-2, in 4 bands) make groups of every size
    sharing a band, pairs sharing several bands, and keys of different bands that collide ((band + 1) ^ value);
    PAIRS_PER_BATCH and SCORE_BATCH as small as 1 cut them anywhere."""
    params = NearDuplicateParams(permutations=8, bands=4, threshold=0.5)
    rows = np.array(values, dtype=np.uint32).reshape(-1, 8)
    numbers = list(range(0, 3 * len(rows), 3))
    ids.shuffle(numbers)
    bands = rows.reshape(-1, 4, 2)
    expected = sorted((min(numbers[i], numbers[j]), max(numbers[i], numbers[j]), similarity(rows[i], rows[j]))
                      for i in range(len(rows)) for j in range(i + 1, len(rows))
                      if (bands[i] == bands[j]).all(axis=1).any() and similarity(rows[i], rows[j]) >= 0.5)
    with pytest.MonkeyPatch.context() as patch, NearDuplicatePairs(params, len(rows)) as index:
        patch.setattr(near_duplicates, "PAIRS_PER_BATCH", batch)
        patch.setattr(near_duplicates, "SCORE_BATCH", score_batch)
        if len(rows):
            index.add(numbers, rows)
        assert sorted(index.pairs()) == expected


def test_the_prompt_is_instruction_then_input() -> None:
    assert prompt_text({"instruction": "問", "input": "文", "output": "答"}) == "問\n文"
