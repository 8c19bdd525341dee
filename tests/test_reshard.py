"""Rewriting the sharding of params.yaml for another count."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from src.core.config import even_ranges, load_params
from src.core.errors import DatasetError, run_cli
from src.reshard import main
from tests.project import PROJECT_ROOT

PROJECT_PARAMS = PROJECT_ROOT / "params.yaml"


@pytest.mark.parametrize("records, count, ranges", [
    (16000, 4, [(0, 4000), (4000, 8000), (8000, 12000), (12000, 16000)]),
    (10, 3, [(0, 4), (4, 7), (7, 10)]),
    (5, 5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
])
def test_even_ranges_are_contiguous_and_differ_by_at_most_one(records: int, count: int, ranges: list) -> None:
    assert even_ranges(records, count) == ranges


@pytest.mark.parametrize("records, count", [(0, 1), (3, 4), (10, 0), (10, -2)])
def test_even_ranges_refuse_empty_shards(records: int, count: int) -> None:
    with pytest.raises(DatasetError) as caught:
        even_ranges(records, count)
    assert str(caught.value) == f"cannot cut {records} records into {count} non-empty shards; choose 1..{records} shards"


def merged_repo(tmp_path: Path, records: int) -> Path:
    """A params.yaml and dvc.yaml (the project's) beside a merged file of ``records`` lines where dvc.yaml puts it."""
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((PROJECT_ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    merged = tmp_path / "data" / "merged" / "databricks-dolly-16k-ja.jsonl"
    merged.parent.mkdir(parents=True)
    merged.write_bytes(b"{}\n" * records)
    return tmp_path


def reshard(work: Path, *args: str) -> int:
    return run_cli(main, [*args, "--params", str(work / "params.yaml"), "--dvc-yaml", str(work / "dvc.yaml")])


def test_reshard_counts_the_merged_records_and_rewrites_only_count_and_shards(tmp_path: Path, capsys) -> None:
    work = merged_repo(tmp_path, 15015)
    original = PROJECT_PARAMS.read_text(encoding="utf-8")
    assert reshard(work, "4") == 0
    assert capsys.readouterr().out == f"{work / 'params.yaml'}: split.count = 4, 15015 records, shards 1_of_4 .. 4_of_4\n"
    text = (work / "params.yaml").read_text(encoding="utf-8")
    assert text == original.replace(
        "    shard1: 4000\n    shard2: 8000\n    shard3: 12000\n    shard4: 16000\n",
        "    shard1: 3754\n    shard2: 7508\n    shard3: 11262\n    shard4: 15015\n")
    split = load_params(work / "params.yaml").split
    assert [len(s) for s in split.shards] == [3754, 3754, 3754, 3753]


def test_reshard_to_eight_and_back_gives_the_committed_file_again(tmp_path: Path) -> None:
    work = merged_repo(tmp_path, 16000)
    assert reshard(work, "8") == 0
    split = load_params(work / "params.yaml").split
    assert [(s.key, s.name, s.start, s.stop) for s in split.shards] == [
        (f"shard{k}", f"{k}_of_8", (k - 1) * 2000, k * 2000) for k in range(1, 9)]
    assert reshard(work, "4") == 0
    assert (work / "params.yaml").read_text(encoding="utf-8") == PROJECT_PARAMS.read_text(encoding="utf-8")


def test_reshard_keeps_other_split_keys_and_sections_and_takes_an_explicit_total(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PROJECT_PARAMS.read_text(encoding="utf-8").replace("allow_gaps: false", "allow_gaps: true")
                      + "\n# trailing section\ntrain:\n  epochs: 3\n")
    assert run_cli(main, ["3", "--records", "10", "--params", str(params), "--dvc-yaml", str(tmp_path / "none")]) == 0
    document = yaml.safe_load(params.read_text())
    assert document["train"] == {"epochs": 3}
    assert document["split"] == {"strategy": "contiguous", "seed": 0, "count": 3, "allow_gaps": True,
                                 "shards": {"shard1": 4, "shard2": 7, "shard3": 10}}


def test_reshard_without_merged_data_says_how_to_get_the_count(tmp_path: Path, capsys) -> None:
    work = merged_repo(tmp_path, 10)
    (work / "data" / "merged" / "databricks-dolly-16k-ja.jsonl").unlink()
    assert reshard(work, "4") == 1
    merged = work / "data" / "merged" / "databricks-dolly-16k-ja.jsonl"
    assert capsys.readouterr().err == (f"error: {merged} is not here, so its record count is unknown; run `dvc repro "
                                       "merge` (or `dvc pull merge`) first, or give the count with --records TOTAL\n")
    assert (work / "params.yaml").read_text(encoding="utf-8") == PROJECT_PARAMS.read_text(encoding="utf-8")


@pytest.mark.parametrize("args, message", [
    (["20000"], "cannot cut 16000 records into 20000 non-empty shards; choose 1..16000 shards"),
    (["0"], "cannot cut 16000 records into 0 non-empty shards; choose 1..16000 shards"),
    (["four"], "python3 -m src.reshard: argument count: invalid int value: 'four' (see --help)"),
    ([], "python3 -m src.reshard: the following arguments are required: count (see --help)"),
    (["4", "--shards", "2"], "python3 -m src.reshard: unrecognized arguments: --shards 2 (see --help)"),
])
def test_reshard_mistakes_are_one_error_line_and_leave_params_alone(tmp_path: Path, capsys, args: list[str],
                                                                    message: str) -> None:
    work = merged_repo(tmp_path, 16000)
    assert reshard(work, *args) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {message}\n")
    assert (work / "params.yaml").read_text(encoding="utf-8") == PROJECT_PARAMS.read_text(encoding="utf-8")
    assert sorted(p.name for p in work.iterdir()) == ["data", "dvc.yaml", "params.yaml"]


def test_reshard_even_leaves_the_ranges_to_the_split_and_back(tmp_path: Path, capsys) -> None:
    work = merged_repo(tmp_path, 16000)
    assert reshard(work, "1024", "--even") == 0
    assert capsys.readouterr().out == (f"{work / 'params.yaml'}: split.count = 1024, even shards of the merged "
                                       "records, shards 1_of_1024 .. 1024_of_1024\n")
    split = load_params(work / "params.yaml").split
    assert (split.count, split.even, split.shards) == (1024, True, ())
    assert "shards:" not in (work / "params.yaml").read_text(encoding="utf-8").split("\nsplit:")[1]
    assert reshard(work, "4") == 0  # explicit ranges again: the committed file, byte for byte
    assert (work / "params.yaml").read_text(encoding="utf-8") == PROJECT_PARAMS.read_text(encoding="utf-8")
