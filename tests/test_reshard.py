"""Rewriting the sharding of params.yaml for another count."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from src.errors import DatasetError, run_cli
from src.params import load_params
from src.reshard import even_ranges, main

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.mark.parametrize("records, count, ranges", [
    (16000, 4, [(0, 4000), (4000, 8000), (8000, 12000), (12000, 16000)]),
    (10, 3, [(0, 4), (4, 7), (7, 10)]),
    (5, 5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
])
def test_even_ranges_are_contiguous_and_differ_by_at_most_one(records: int, count: int, ranges: list) -> None:
    assert even_ranges(records, count) == ranges


@pytest.mark.parametrize("records, count", [(3, 4), (10, 0), (10, -2)])
def test_even_ranges_refuse_empty_shards(records: int, count: int) -> None:
    with pytest.raises(DatasetError, match=f"cannot cut {records} records into {count} non-empty shards"):
        even_ranges(records, count)


def test_reshard_rewrites_only_the_split_block(tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    original = PROJECT_PARAMS.read_text(encoding="utf-8")
    params.write_text(original, encoding="utf-8")
    assert run_cli(main, ["8", "--params", str(params)]) == 0
    assert capsys.readouterr().out == f"{params}: split.count = 8, 16000 records, shards 1_of_8 .. 8_of_8\n"
    text = params.read_text(encoding="utf-8")
    assert text.split("\nsplit:")[0] == original.split("\nsplit:")[0]  # raw and merge, comments included
    split = load_params(params).split
    assert split.count == 8
    assert [(s.name, s.start, s.stop) for s in split.shards] == [
        (f"{k}_of_8", (k - 1) * 2000, k * 2000) for k in range(1, 9)]
    # Back to 4 gives the committed file again, byte for byte.
    assert run_cli(main, ["4", "--params", str(params)]) == 0
    assert params.read_text(encoding="utf-8") == original


def test_reshard_keeps_sections_after_split_and_takes_an_explicit_total(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PROJECT_PARAMS.read_text(encoding="utf-8") + "\n# trailing section\ntrain:\n  epochs: 3\n")
    assert run_cli(main, ["3", "--records", "10", "--params", str(params)]) == 0
    document = yaml.safe_load(params.read_text())
    assert document["train"] == {"epochs": 3}
    assert document["split"]["shards"] == {"1_of_3": {"start": 0, "stop": 4}, "2_of_3": {"start": 4, "stop": 7},
                                           "3_of_3": {"start": 7, "stop": 10}}


def test_reshard_refuses_an_impossible_count_and_leaves_params_alone(tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PROJECT_PARAMS.read_text(encoding="utf-8"))
    assert run_cli(main, ["20000", "--params", str(params)]) == 1
    assert capsys.readouterr().err == ("error: cannot cut 16000 records into 20000 non-empty shards; "
                                       "choose 1..16000 shards\n")
    assert params.read_text(encoding="utf-8") == PROJECT_PARAMS.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]
