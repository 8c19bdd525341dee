"""Stage merge: order, new contiguous indexes, provenance, duplicate counting and dropping."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.core.config import NearDuplicateParams
from src.core.errors import DatasetError
from src.core.schema import CATEGORIES, RAW_MANIFEST
from src.core.scratch import scratch_database
from src.merge import main
from src.raw import write_source
from src.records.index import ROW, record_digests
from src.records.lines import shard_line
from src.records.merging import DuplicateCounts, merge_sources
from src.sources.encode import encoded_batches
from tests.project import PROJECT_ROOT
from tests.records_data import record_line, write_raw

PROJECT_PARAMS = PROJECT_ROOT / "params.yaml"


def record(index: str, instruction: str, output: str, input: str = "", category: str = "open_qa") -> dict:
    return {"index": index, "instruction": instruction, "input": input, "output": output, "category": category}


BASE = [record("a", "山は？", "富士山"), record("b", "川は？", "信濃川"), record("c", "山は？", "富士山")]
ADDITIONS = [record("0", "山は？", "富士山", category="general_qa"), record("1", "山は？", "高尾山"),
             record("2", "湖は？", "琵琶湖", input="日本の湖")]


def merged(tmp_path: Path, sources: list[tuple[str, list[dict]]], drop_duplicates: bool, counts: DuplicateCounts,
           near_duplicates: NearDuplicateParams | None = None) -> tuple[list[bytes], np.ndarray]:
    """The merged lines and record index rows of ``sources``; ``counts`` gets the duplicate counts."""
    with scratch_database() as database:
        found = merge_sources(database, write_raw(tmp_path / "raw", sources), tmp_path / "merged.jsonl",
                              tmp_path / "records.npy", drop_duplicates, near_duplicates)
    counts.__dict__.update(found.counts.__dict__)
    return (tmp_path / "merged.jsonl").read_bytes().splitlines(keepends=True), np.load(tmp_path / "records.npy")


@pytest.mark.parametrize("drop, kept", [(False, [0, 1, 2, 3, 4, 5]), (True, [0, 1, 4, 5])])
def test_merge_renumbers_keeps_provenance_and_counts_duplicates(tmp_path: Path, drop: bool, kept: list[int]) -> None:
    counts = DuplicateCounts()
    lines, rows = merged(tmp_path, [("base", BASE), ("additions", ADDITIONS)], drop, counts)
    originals = [("base", r) for r in BASE] + [("additions", r) for r in ADDITIONS]
    assert lines == [
        record_line({"index": str(number), "source": originals[position][0],
                     "source_index": originals[position][1]["index"], "category": originals[position][1]["category"],
                     "chars": [len(originals[position][1][k]) for k in ("instruction", "input", "output")]},
                         shard_line(originals[position][1]))
        for number, position in enumerate(kept)
    ]
    # "c" and "0" repeat "a"'s shard line; "1" repeats only its prompt.
    assert counts == DuplicateCounts(exact=2, same_prompt=3, dropped=2 if drop else 0)
    # The record index: per line, where it starts and where its shard fields start, what the split counts, and the
    # digests of its prompt and shard fields, carried over from the raw stage's index.
    assert rows.dtype == ROW
    assert rows["offset"].tolist() == [sum(map(len, lines[:n])) for n in range(len(kept))]
    for line, row, position in zip(lines, rows, kept, strict=True):
        fields = json.loads(line)
        shard = shard_line(fields)
        assert line[row["head"]:] == b", " + shard[1:]
        assert (CATEGORIES[row["category"]], row["chars"].tolist()) == (fields["category"], fields["chars"])
        output = line.index(b', "output": ', row["head"])
        assert (row["prompt"].tobytes(), row["line"].tobytes()) == record_digests(line, row["head"], output)
        assert fields["source_index"] == originals[position][1]["index"]


def test_merge_stage_writes_merged_lines_and_metrics(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, records in (("base", BASE), ("additions", ADDITIONS)):
        write_source(encoded_batches(records), raw / f"{name}.jsonl", raw / f"{name}.npy")
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
    assert lines[0] == ('{"index":"0","source":"base","source_index":"a","category":"open_qa","chars":[3,0,3], '
                        '"instruction": "山は？", "input": "", "output": "富士山"}\n').encode()
    assert [json.loads(line)["source_index"] for line in lines] == ["a", "b", "1", "2"]
    assert np.load(record_index)["offset"].tolist() == [sum(map(len, lines[:n])) for n in range(4)]
    summary = json.loads(metrics.read_text())
    assert summary["records"] == 4
    assert summary["sources"] == {"base": 2, "additions": 2}
    assert summary["duplicates"] == {"exact": 2, "same_prompt": 3, "dropped": 2, "near_dropped": 0}
    assert summary["categories"]["open_qa"] == 4 and summary["with_input"] == 1


RAW_EDITS = {
    "a line edited": (lambda raw: raw.write_bytes(raw.read_bytes().replace("信濃川".encode(), "信濃川!".encode())),
                      "{raw}: does not match its record index; run the raw stage again (dvc repro -f raw)"),
    "a line removed": (lambda raw: raw.write_bytes(b"".join(raw.read_bytes().splitlines(keepends=True)[:2])),
                       "{raw}: does not match its record index; run the raw stage again (dvc repro -f raw)"),
    "a line added": (lambda raw: raw.write_bytes(raw.read_bytes() * 2),
                     "{raw}: holds more records than its record index; run the raw stage again (dvc repro -f raw)"),
    "the index removed": (lambda raw: raw.with_suffix(".npy").unlink(),
                          "{index}: missing; run the raw stage again (dvc repro -f raw)"),
}


@pytest.mark.parametrize("edit", RAW_EDITS)
def test_raw_lines_that_disagree_with_their_record_index_are_refused(tmp_path: Path, edit: str) -> None:
    """Each is part of the raw stage's output; a hand edit of one alone is caught before anything is written."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_source(encoded_batches(BASE), raw / "base.jsonl", raw / "base.npy")
    (raw / RAW_MANIFEST).write_text(json.dumps({"sources": {"base": {"kind": "sample", "records": 3}}}))
    change, message = RAW_EDITS[edit]
    change(raw / "base.jsonl")
    merged = tmp_path / "merged"
    with pytest.raises(DatasetError) as error:
        main([str(PROJECT_PARAMS), str(raw), str(merged / "m.jsonl"), str(merged / "records.npy"),
              str(merged / "sources.json"), str(tmp_path / "merge.json")])
    assert str(error.value) == message.format(raw=raw / "base.jsonl", index=raw / "base.npy")
    assert not merged.exists() or list(merged.iterdir()) == []


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
def test_near_duplicates_of_earlier_kept_records_are_dropped_when_asked(tmp_path: Path, drop_duplicates: bool,
                                                                        kept: list[str],
                                                                        counts: DuplicateCounts) -> None:
    found = DuplicateCounts()
    lines, _ = merged(tmp_path, [("s", NEAR)], drop_duplicates, found, NearDuplicateParams())
    assert [json.loads(line)["source_index"] for line in lines] == kept
    assert [json.loads(line)["index"] for line in lines] == ["0", "1"]
    assert found == counts


def test_without_the_near_duplicate_drop_near_duplicates_are_kept(tmp_path: Path) -> None:
    found = DuplicateCounts()
    assert len(merged(tmp_path, [("s", NEAR)], False, found)[0]) == 4
    assert found.near_dropped == 0
