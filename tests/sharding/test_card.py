"""The dataset card: its license follows the sources (share-alike is required), its header lists every shard."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from src.core.config import CardParams, SplitParams
from src.core.errors import DatasetError
from src.sharding.card import card_license, render_card

SA = {"kind": "path", "license": "cc-by-sa-3.0"}
MIT = {"kind": "path", "license": "mit"}
NONE = {"kind": "sample", "license": None}


@pytest.mark.parametrize("declared, sources, expected", [
    (None, {"dolly": SA}, "cc-by-sa-3.0"),
    ("cc-by-sa-3.0", {"dolly": SA, "extra": MIT}, "cc-by-sa-3.0"),
    (None, {"dolly": SA, "extra": NONE}, "cc-by-sa-3.0"),
    (None, {"a": MIT, "b": MIT}, "mit"),
    (None, {"a": MIT, "b": NONE}, "other"),
    (None, {"a": NONE}, "unknown"),
    ("apache-2.0", {"a": MIT}, "apache-2.0"),
])
def test_the_card_license_follows_the_sources(declared: str | None, sources: dict, expected: str) -> None:
    assert card_license(CardParams("t", declared), sources) == expected


@pytest.mark.parametrize("declared, sources, message", [
    ("mit", {"dolly": SA}, "card.license 'mit' contradicts source 'dolly''s share-alike license 'cc-by-sa-3.0'; "
                           "shards made from it must carry 'cc-by-sa-3.0' (set card.license to it, or remove it to "
                           "take the sources')"),
    (None, {"a": SA, "b": {"license": "cc-by-sa-4.0"}},
     "raw.sources: share-alike licenses cc-by-sa-3.0, cc-by-sa-4.0 cannot be combined in one dataset; use sources "
     "under one of them"),
])
def test_a_card_contradicting_a_share_alike_license_is_refused(declared: str | None, sources: dict,
                                                                message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        card_license(CardParams("t", declared), sources)
    assert str(caught.value) == message


def test_the_header_lists_each_shard_as_a_config_with_its_file() -> None:
    split = SplitParams.parse({"count": 2, "shards": {"shard1": 3, "shard2": 5}})
    shards = [{"shard": f"{k}_of_2", "records": n, "start": a, "stop": b, "md5": "0" * 32}
              for k, n, a, b in ((1, 3, 0, 3), (2, 2, 3, 5))]
    categories = [{"shard": f"{k}_of_2", "category": c, "records": 1 if c == "open_qa" else 0}
                  for k in (1, 2) for c in ("open_qa", "general_qa", "classification", "closed_qa", "brainstorming",
                                           "information_extraction", "summarization", "creative_writing")]
    provenance = {"sources": {"dolly": {**SA, "path": "d.json", "sha256": "ab", "records": 5, "kept": 5}},
                  "merge": {"drop_duplicates": False}}
    headline = {"cross_shard_duplicates": 4, "near_duplicate_pairs": 9, "contaminated_records": 2}
    text = render_card(CardParams("A title"), split, provenance, pd.DataFrame(shards), pd.DataFrame(categories),
                       "x-{shard}.jsonl", "{shard}", headline, {}, 13)
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "cc-by-sa-3.0" and header["pretty_name"] == "A title"
    assert header["configs"] == [{"config_name": "1_of_2", "data_files": [{"split": "train", "path": "x-1_of_2.jsonl"}]},
                                 {"config_name": "2_of_2", "data_files": [{"split": "train", "path": "x-2_of_2.jsonl"}]}]
    assert "| dolly | `d.json` | sha256 ab | cc-by-sa-3.0 | 5 | 5 |" in text
    assert f"| 1_of_2 | [0, 3) | 3 | `{'0' * 32}` | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in text
    assert text.endswith("## Leakage and contamination\n\n"
                         "- records whose instruction and input already appear in an earlier shard: 4\n"
                         "- record pairs across shards whose instruction and input are near-duplicates (MinHash, "
                         "exact ones included): 9\n"
                         "- contamination: no evaluation files were named (`contamination.eval`)\n")
    assert "- merge: `drop_duplicates: false`, `drop_near_duplicates: false`" in text
    checked = {"quiz": {"path": "eval/quiz.jsonl", "sha256": "cd" * 32, "items": 2, "ngrams": 40}}
    text = render_card(CardParams("A title"), split, provenance, pd.DataFrame(shards), pd.DataFrame(categories),
                       "x-{shard}.jsonl", "{shard}", headline, checked, 13)
    assert text.endswith("- records whose instruction or output shares 13 characters in a row with an evaluation "
                         "file: 2\n\n"
                         "| evaluation file | path | sha256 | items | distinct 13-grams |\n"
                         "| --- | --- | --- | --- | --- |\n"
                         f"| quiz | `eval/quiz.jsonl` | {'cd' * 32} | 2 | 40 |\n")
