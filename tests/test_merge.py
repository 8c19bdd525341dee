"""Stage merge: order, new contiguous indexes, provenance, duplicate counting and dropping."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.jsonl import prompt_bytes, shard_line
from src.merge import DuplicateCounts, main, merge_lines
from src.params import NearDuplicateParams
from src.raw import raw_line
from src.schema import CATEGORIES, RAW_MANIFEST
from src.seen import digest
from tests.project import PROJECT_ROOT

PROJECT_PARAMS = PROJECT_ROOT / "params.yaml"


def record(index: str, instruction: str, output: str, input: str = "", category: str = "open_qa") -> dict:
    return {"index": index, "instruction": instruction, "input": input, "output": output, "category": category}


BASE = [record("a", "山は？", "富士山"), record("b", "川は？", "信濃川"), record("c", "山は？", "富士山")]
ADDITIONS = [record("0", "山は？", "富士山", category="general_qa"), record("1", "山は？", "高尾山"),
             record("2", "湖は？", "琵琶湖", input="日本の湖")]


@pytest.mark.parametrize("drop, kept", [(False, [0, 1, 2, 3, 4, 5]), (True, [0, 1, 4, 5])])
def test_merge_renumbers_keeps_provenance_and_counts_duplicates(drop: bool, kept: list[int]) -> None:
    counts = DuplicateCounts()
    sources = [("base", map(raw_line, BASE)), ("additions", map(raw_line, ADDITIONS))]
    merged = list(merge_lines(sources, drop, counts))
    originals = [("base", r) for r in BASE] + [("additions", r) for r in ADDITIONS]
    assert merged == [
        ({"index": str(number), "category": originals[position][1]["category"], "source": originals[position][0],
          "source_index": originals[position][1]["index"],
          "chars": [len(originals[position][1][k]) for k in ("instruction", "input", "output")]},
         shard_line(originals[position][1]), digest(prompt_bytes(shard_line(originals[position][1]))))
        for number, position in enumerate(kept)
    ]
    # "c" and "0" repeat "a"'s shard line; "1" repeats only its prompt.
    assert counts == DuplicateCounts(exact=2, same_prompt=3, dropped=2 if drop else 0)


def test_merge_stage_writes_merged_lines_and_metrics(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, records in (("base", BASE), ("additions", ADDITIONS)):
        (raw / f"{name}.jsonl").write_bytes(b"".join(map(raw_line, records)))
    manifest = {"base": {"kind": "path", "records": 3, "license": "cc-by-sa-3.0", "path": "base.json", "sha256": "ab"},
                "additions": {"kind": "sample", "records": 3, "license": None, "sample_records": 3, "seed": 1}}
    (raw / RAW_MANIFEST).write_text(json.dumps({"sources": manifest}))
    params = tmp_path / "params.yaml"
    params.write_text(PROJECT_PARAMS.read_text(encoding="utf-8").replace("drop_duplicates: false",
                                                                         "drop_duplicates: true"))
    merged, metrics = tmp_path / "merged" / "m.jsonl", tmp_path / "metrics" / "merge.json"
    provenance = tmp_path / "merged" / "sources.json"
    record_index = tmp_path / "merged" / "records.npy"
    main([str(params), str(raw), str(merged), str(record_index), str(provenance), str(metrics)])
    # What the sources were and how many records of each the merge kept, for the dataset card.
    assert json.loads(provenance.read_text()) == {
        "sources": {"base": {**manifest["base"], "kept": 2}, "additions": {**manifest["additions"], "kept": 2}},
        "merge": {"drop_duplicates": True, "drop_near_duplicates": False}}

    lines = merged.read_bytes().splitlines(keepends=True)
    # The head (provenance, category, characters of each text field), then exactly the shard line's fields.
    assert lines[0] == ('{"index":"0","category":"open_qa","source":"base","source_index":"a","chars":[3,0,3], '
                        '"instruction": "山は？", "input": "", "output": "富士山"}\n').encode()
    assert [json.loads(line)["source_index"] for line in lines] == ["a", "b", "1", "2"]
    # The record index: per line, where it starts and where its shard fields start, and what the split counts.
    rows = np.load(record_index)
    assert rows["offset"].tolist() == [sum(map(len, lines[:n])) for n in range(4)]
    for line, row in zip(lines, rows, strict=True):
        fields = json.loads(line)
        assert line[row["head"]:].startswith(b', "instruction": ')
        assert (CATEGORIES[row["category"]], row["chars"].tolist()) == (fields["category"], fields["chars"])
        assert row["prompt"].tobytes() == digest(prompt_bytes(shard_line(fields)))
    summary = json.loads(metrics.read_text())
    assert summary["records"] == 4
    assert summary["sources"] == {"base": 2, "additions": 2}
    assert summary["duplicates"] == {"exact": 2, "same_prompt": 3, "dropped": 2, "near_dropped": 0}
    assert summary["categories"]["open_qa"] == 4 and summary["with_input"] == 1


# A passage of 300 distinct characters; one character changed leaves 291 of the 301 5-grams of the two shared
# (Jaccard 0.97); the first half alone shares its 146 with the whole's 296 (Jaccard 0.49).
PASSAGE = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(300))
NEAR = [record("0", "要約して", "x", input=PASSAGE), record("1", "要約して", "y", input=PASSAGE[:150] + "。" + PASSAGE[151:]),
        record("2", "要約して", "z", input=PASSAGE[:150]), record("3", "要約して", "x", input=PASSAGE)]


@pytest.mark.parametrize("drop_duplicates, kept, counts", [
    # Record 1 is a near-duplicate of record 0; record 3 repeats record 0 exactly (a near-duplicate too).
    (False, ["0", "2"], DuplicateCounts(exact=1, same_prompt=1, near_dropped=2)),
    (True, ["0", "2"], DuplicateCounts(exact=1, same_prompt=1, dropped=1, near_dropped=1)),
])
def test_near_duplicates_of_earlier_kept_records_are_dropped_when_asked(drop_duplicates: bool, kept: list[str],
                                                                        counts: DuplicateCounts) -> None:
    found = DuplicateCounts()
    merged = list(merge_lines([("s", map(raw_line, NEAR))], drop_duplicates, found, NearDuplicateParams()))
    assert [head["source_index"] for head, _, _ in merged] == kept
    assert [head["index"] for head, _, _ in merged] == ["0", "1"]
    assert found == counts


def test_without_the_near_duplicate_drop_near_duplicates_are_kept() -> None:
    found = DuplicateCounts()
    assert len(list(merge_lines([("s", map(raw_line, NEAR))], False, found))) == 4
    assert found.near_dropped == 0
