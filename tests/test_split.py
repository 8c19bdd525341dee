"""Stage split: one shard's range of merged records, in the published line format."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.errors import run_cli
from src.jsonl import dumps_line
from src.params import ShardRange
from src.split import main, shard_records

PARAMS_8_OVER_10 = """
raw: {sources: {s: {sample: {records: 10}}}}
merge: {drop_duplicates: false}
split:
  count: 3
  allow_gaps: ALLOW
  shards:
    1_of_3: {start: 0, stop: 4}
    2_of_3: {start: 4, stop: 7}
    3_of_3: {start: 7, stop: STOP}
"""


def merged_file(tmp_path: Path, records: int = 10) -> Path:
    path = tmp_path / "merged.jsonl"
    path.write_bytes(b"".join(dumps_line({"index": str(n), "instruction": f"問{n}", "input": "",
                                          "output": f"答{n}", "category": "open_qa", "source": "s",
                                          "source_index": str(n)}) for n in range(records)))
    return path


def params_file(tmp_path: Path, stop: int = 10, allow_gaps: bool = False) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_8_OVER_10.replace("STOP", str(stop)).replace("ALLOW", str(allow_gaps).lower()))
    return path


def test_shard_records_takes_exactly_the_half_open_range(tmp_path: Path) -> None:
    lines = merged_file(tmp_path).read_bytes().splitlines(keepends=True)
    shard = ShardRange("2_of_3", 2, 3, 4, 7)
    assert [r["index"] for r in shard_records(iter(lines), shard)] == ["4", "5", "6"]


def test_split_stage_writes_the_shard_and_its_metrics(tmp_path: Path) -> None:
    shard, metrics = tmp_path / "shards" / "x-2_of_3.jsonl", tmp_path / "metrics" / "2_of_3.json"
    main([str(params_file(tmp_path)), "2_of_3", str(merged_file(tmp_path)), str(shard), str(metrics)])
    expected = "".join(json.dumps({"instruction": f"問{n}", "input": "", "output": f"答{n}"}, ensure_ascii=False)
                       + "\n" for n in (4, 5, 6)).encode("utf-8")
    assert shard.read_bytes() == expected
    summary = json.loads(metrics.read_text())
    assert (summary["records"], summary["bytes"], summary["start"], summary["stop"]) == (3, len(expected), 4, 7)


@pytest.mark.parametrize("stop, allow_gaps, message", [
    (11, False, "error: split.shards.3_of_3: stop 11 is past the end of the merged data (10 records); "
                "set it to at most 10"),
    (9, False, "error: split.shards: records 9..9 are in no shard (after '3_of_3'); set its stop to 10 or set "
               "split.allow_gaps: true"),
])
def test_ranges_are_checked_against_the_merged_data_before_writing(tmp_path: Path, capsys, stop: int,
                                                                    allow_gaps: bool, message: str) -> None:
    shard = tmp_path / "shard.jsonl"
    status = run_cli(main, [str(params_file(tmp_path, stop, allow_gaps)), "1_of_3", str(merged_file(tmp_path)),
                            str(shard), str(tmp_path / "m.json")])
    assert (status, capsys.readouterr().err) == (1, message + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.jsonl", "params.yaml"]


def test_gaps_are_allowed_when_asked(tmp_path: Path) -> None:
    shard = tmp_path / "shard.jsonl"
    main([str(params_file(tmp_path, 9, True)), "3_of_3", str(merged_file(tmp_path)), str(shard),
          str(tmp_path / "m.json")])
    assert [json.loads(line)["output"] for line in shard.read_bytes().splitlines()] == ["答7", "答8"]
