"""Stage split: every shard in one pass over the merged records, in the published line format, with the headline
metrics and the per-shard tables."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from src.core.errors import run_cli
from src.split import main
from tests.records_data import write_merged_records

PARAMS = """
raw: {sources: {s: {sample: {records: 10}}}}
merge: {drop_duplicates: false}
card: {pretty_name: test}
split:
  strategy: STRATEGY
  seed: 7
  count: 3
  allow_gaps: ALLOW
  shards:
    shard1: 4
    shard2: 7
    shard3: STOP
"""
OUTPUTS = ("metrics.json", "shards.json", "categories.json", "lengths.json", "leakage.json", "contamination.json")
PROVENANCE = {"sources": {"s": {"kind": "sample", "records": 10, "license": "cc0-1.0", "sample_records": 10,
                                "seed": 1, "kept": 10}},
              "merge": {"drop_duplicates": False}}
# Record n: category, instruction, input; records 3 and 8 repeat the prompt of record 0 (8 in another shard).
CATEGORIES = ["open_qa", "open_qa", "closed_qa", "open_qa", "summarization", "open_qa", "open_qa", "closed_qa",
              "open_qa", "brainstorming"]


def record(n: int) -> dict:
    prompt = 0 if n in (3, 8) else n
    return {"index": str(n), "instruction": f"問{prompt}", "input": "文" * (prompt % 3), "output": "答" * (60 * n + 1),
            "category": CATEGORIES[n], "source": "s", "source_index": str(n)}


def reference_line(n: int) -> bytes:
    r = record(n)
    return (json.dumps({"instruction": r["instruction"], "input": r["input"], "output": r["output"]},
                       ensure_ascii=False) + "\n").encode("utf-8")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "sources.json").write_text(json.dumps(PROVENANCE))
    write_merged_records(tmp_path, [record(n) for n in range(10)])
    return tmp_path


def run_split(work: Path, stop: int = 10, allow_gaps: bool = False, shard_path: str = "shards/x-{shard}.jsonl",
              strategy: str = "contiguous", extra_params: str = "", deps: tuple[str, ...] = ()) -> int:
    (work / "params.yaml").write_text(PARAMS.replace("STOP", str(stop)).replace("ALLOW", str(allow_gaps).lower())
                                      .replace("STRATEGY", strategy) + extra_params)
    (work / "dvc.yaml").write_text(json.dumps({"stages": {"split": {"cmd": "x", "deps": ["merged.jsonl", *deps]}}}))
    card = Path(shard_path).parent / "README.md"
    return run_cli(main, [str(work / "params.yaml"), str(work / "dvc.yaml"), str(work / "merged.jsonl"),
                          str(work / "records.npy"), str(work / "sources.json"), str(work / shard_path), str(work / card),
                          *(str(work / name) for name in OUTPUTS)])


def test_one_pass_writes_every_shard_in_the_published_format(work: Path) -> None:
    assert run_split(work) == 0
    expected = {"x-1_of_3.jsonl": range(0, 4), "x-2_of_3.jsonl": range(4, 7), "x-3_of_3.jsonl": range(7, 10)}
    assert sorted(p.name for p in (work / "shards").iterdir()) == sorted([*expected, "README.md"])
    for name, numbers in expected.items():
        assert (work / "shards" / name).read_bytes() == b"".join(reference_line(n) for n in numbers)


def test_the_tables_describe_each_shard(work: Path) -> None:
    run_split(work)
    shards = json.loads((work / "shards.json").read_text())
    body = (work / "shards" / "x-2_of_3.jsonl").read_bytes()
    assert shards[1] == {"shard": "2_of_3", "records": 3, "bytes": len(body), "md5": hashlib.md5(body).hexdigest(),
                         "start": 4, "stop": 7, "with_input": 2, "mean_chars_instruction": 2.0,
                         "mean_chars_input": round((1 + 2 + 0) / 3, 2), "mean_chars_output": 301.0}
    categories = json.loads((work / "categories.json").read_text())
    assert len(categories) == 3 * 8
    open_qa_2 = next(row for row in categories if row["shard"] == "2_of_3" and row["category"] == "open_qa")
    # Shard 2 holds records 4, 5, 6: two open_qa of three; the whole holds six of ten.
    assert open_qa_2 == {"shard": "2_of_3", "category": "open_qa", "records": 2, "share": 66.67,
                         "whole_share": 60.0, "deviation": 6.67}
    lengths = json.loads((work / "lengths.json").read_text())
    assert [row["chars"] for row in lengths[:9]] == ["0-49", "50-99", "100-199", "200-399", "400-799", "800-1599",
                                                     "1600-3199", "3200-6399", "6400+"]
    # Shard 1 holds records 0..3: 4, 65, 125, 185 characters.
    assert [row["records"] for row in lengths[:9]] == [1, 1, 2, 0, 0, 0, 0, 0, 0]
    assert sum(row["records"] for row in lengths) == 10


def test_the_headline_metrics_compare_across_shard_counts(work: Path) -> None:
    run_split(work)
    sizes = [(work / "shards" / f"x-{k}_of_3.jsonl").stat().st_size for k in (1, 2, 3)]
    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics == {"shards": 3, "records_min": 3, "records_max": 4, "bytes_min": min(sizes),
                       "bytes_max": max(sizes),
                       # open_qa: 1 of 3 records in shard 3 (33.33%) against 6 of 10 overall (60%).
                       "category_deviation_max": 26.67,
                       # Record 8 repeats the prompt of record 0 in a later shard; record 3 stays in shard 1.
                       "cross_shard_duplicates": 1,
                       # Records 0 and 3 (shard 1) each pair with record 8 (shard 3); no other prompts are alike.
                       "near_duplicate_pairs": 2,
                       "contaminated_records": 0, "strategy": "contiguous", "seed": 7}


@pytest.mark.parametrize("stop, message", [
    (11, "error: split.shards.shard3: stop 11 is past the end of the merged data (10 records); set it to at most 10 "
         "(python3 -m src.reshard 3 does)"),
    (9, "error: split.shards: records 9..9 are in no shard (after 'shard3'); set its stop to 10 (python3 -m "
        "src.reshard 3 does) or set split.allow_gaps: true"),
])
def test_ranges_are_checked_against_the_merged_data_and_nothing_is_left(work: Path, capsys, stop: int,
                                                                         message: str) -> None:
    assert run_split(work, stop) == 1
    assert capsys.readouterr().err == message + "\n"
    assert sorted(p.name for p in work.iterdir()) == ["dvc.yaml", "merged.jsonl", "params.yaml", "records.npy",
                                                      "sources.json"]


def test_a_refused_sharding_keeps_the_previous_shards(work: Path, capsys) -> None:
    run_split(work)
    before = {p.name: p.read_bytes() for p in (work / "shards").iterdir()}
    assert run_split(work, 11) == 1
    assert {p.name: p.read_bytes() for p in (work / "shards").iterdir()} == before
    assert [p.name for p in work.iterdir() if p.name.endswith(".tmp")] == []


def test_the_shard_directory_holds_exactly_the_current_shards(work: Path) -> None:
    (work / "shards").mkdir()
    (work / "shards" / "x-4_of_4.jsonl").write_bytes(b"old\n")
    run_split(work)
    assert sorted(p.name for p in (work / "shards").iterdir()) == ["README.md", "x-1_of_3.jsonl", "x-2_of_3.jsonl",
                                                                  "x-3_of_3.jsonl"]


def test_gaps_are_allowed_when_asked(work: Path) -> None:
    run_split(work, 9, allow_gaps=True)
    assert (work / "shards" / "x-3_of_3.jsonl").read_bytes() == reference_line(7) + reference_line(8)


@pytest.mark.parametrize("shard_path", ["shards/x.jsonl", "shards/x-{shard}-{shard}.jsonl", "{shard}/x-{shard}.jsonl"])
def test_the_shard_path_must_name_the_shard_once_in_the_file_name(work: Path, capsys, shard_path: str) -> None:
    assert run_split(work, shard_path=shard_path) == 1
    assert capsys.readouterr().err == (f"error: {work / shard_path}: the shard path must hold {{shard}} once, "
                                       "in the file name\n")


def test_a_missing_merged_file_says_which_stage_to_run(work: Path, capsys) -> None:
    (work / "merged.jsonl").unlink()
    assert run_split(work) == 1
    assert capsys.readouterr().err == (f"error: {work / 'merged.jsonl'}: missing; run the merge stage "
                                       "(dvc repro merge)\n")


@pytest.mark.parametrize("strategy", ["contiguous", "shuffle"])
@pytest.mark.parametrize("edit", ["merged", "index"])
def test_a_merged_file_and_record_index_that_disagree_are_refused(work: Path, capsys, strategy: str,
                                                                    edit: str) -> None:
    """Each is a DVC output of the merge; a hand edit of one alone is caught before any shard is kept."""
    if edit == "merged":  # one character more in record 2's head shifts every later line
        merged = work / "merged.jsonl"
        merged.write_bytes(merged.read_bytes().replace(b'"source_index":"2"', b'"source_index":"22"'))
    else:  # the index of other records (one instruction longer) with the same count
        original = (work / "merged.jsonl").read_bytes()
        write_merged_records(work, [{**record(n), "instruction": record(n)["instruction"] + "?"} for n in range(10)])
        (work / "merged.jsonl").write_bytes(original)
    assert run_split(work, strategy=strategy) == 1
    assert capsys.readouterr().err == (f"error: {work / 'merged.jsonl'}: does not match its record index; run the "
                                       "merge stage again (dvc repro -f merge)\n")
    assert not (work / "shards").exists()


def test_a_merged_file_with_lines_its_index_lacks_is_refused(work: Path, capsys) -> None:
    """A line appended after the last one the index knows would otherwise end up inside the last shard line."""
    merged = work / "merged.jsonl"
    merged.write_bytes(merged.read_bytes() + merged.read_bytes().splitlines(keepends=True)[0])
    assert run_split(work) == 1
    assert capsys.readouterr().err == (f"error: {merged}: holds more records than its record index; run the merge "
                                       "stage again (dvc repro -f merge)\n")
    assert not (work / "shards").exists()


@pytest.mark.parametrize("content, message", [
    (b"not numpy", "{path}: not a record index; run the merge stage again (dvc repro -f merge)"),
    (None, "{path}: a record index of another layout; run the merge stage again (dvc repro -f merge)"),
])
def test_a_record_index_that_is_not_ours_is_refused(work: Path, capsys, content: bytes | None, message: str) -> None:
    path = work / "records.npy"
    if content is None:
        np.save(path, np.arange(10))
    else:
        path.write_bytes(content)
    assert run_split(work) == 1
    assert capsys.readouterr().err == "error: " + message.format(path=path) + "\n"


def test_a_record_index_of_another_record_count_is_refused(work: Path, capsys) -> None:
    write_merged_records(work, [record(n) for n in range(9)])
    assert run_split(work) == 1
    assert capsys.readouterr().err == (f"error: {work / 'records.npy'}: does not match {work / 'sources.json'}; run "
                                       "the merge stage again (dvc repro -f merge)\n")


@pytest.mark.parametrize("strategy, order", [
    ("shuffle", [8, 1, 5, 9, 0, 4, 3, 2, 6, 7]),  # the SplitMix64 permutation of seed 7
    # open_qa is 6 of 10, closed_qa 2, brainstorming and summarization 1: shards of 4, 3 and 3 records take
    # 3+1, 2+1 and 1+1+1 of them (shares rounded, then the extra records from the categories that need the most),
    # the earliest records of each category first, each shard in merged order.
    ("stratified", [0, 1, 2, 3, 5, 6, 7, 4, 8, 9]),
])
def test_a_strategy_orders_the_records_before_the_ranges_cut_them(work: Path, strategy: str,
                                                                   order: list[int]) -> None:
    assert run_split(work, strategy=strategy) == 0
    shards = [(work / "shards" / f"x-{k}_of_3.jsonl").read_bytes() for k in (1, 2, 3)]
    assert shards == [b"".join(reference_line(n) for n in order[a:b]) for a, b in ((0, 4), (4, 7), (7, 10))]
    metrics = json.loads((work / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["seed"]) == (strategy, 7)


EVAL = {"contamination": "contamination:\n  ngram: 13\n  eval: {quiz: quiz.jsonl}\n"}


def write_quiz(work: Path) -> None:
    # Planted: the output of record n is "答" * (60 n + 1), so every record but record 0 holds 13 答 in a row; the
    # quiz's other text matches nothing.
    items = [{"question": "答" * 13, "answer": "x"}, {"question": "ほかのどこにもない長い問題文です。"}]
    (work / "quiz.jsonl").write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))


def test_the_certificate_tables_and_metrics_report_leakage_and_contamination(work: Path, monkeypatch) -> None:
    monkeypatch.chdir(work)  # paths in params.yaml are relative to the project, where DVC runs the stage
    write_quiz(work)
    assert run_split(work, extra_params=EVAL["contamination"], deps=("quiz.jsonl",)) == 0
    metrics = json.loads((work / "metrics.json").read_text())
    assert (metrics["cross_shard_duplicates"], metrics["near_duplicate_pairs"], metrics["contaminated_records"]) == \
        (1, 2, 9)
    assert json.loads((work / "leakage.json").read_text()) == [
        {"shard_a": "1_of_3", "shard_b": "3_of_3", "exact_pairs": 2, "near_duplicate_pairs": 2,
         "examples": {"exact": [{"a": 0, "b": 8, "similarity": 1.0}], "near": []}}]
    assert json.loads((work / "contamination.json").read_text()) == [
        {"shard": "1_of_3", "records": 4, "contaminated": 3, "indices": [1, 2, 3]},
        {"shard": "2_of_3", "records": 3, "contaminated": 3, "indices": [4, 5, 6]},
        {"shard": "3_of_3", "records": 3, "contaminated": 3, "indices": [7, 8, 9]}]
    # The card beside the shards carries the headline numbers and names the evaluation file it was checked against:
    # one distinct 13-gram of 答 and the 5 of the 17-character question.
    card = (work / "shards" / "README.md").read_text(encoding="utf-8")
    sha256 = hashlib.sha256((work / "quiz.jsonl").read_bytes()).hexdigest()
    assert card.endswith("- records whose instruction or output shares 13 characters in a row with an evaluation "
                         "file: 9\n\n| evaluation file | path | sha256 | items | distinct 13-grams |\n"
                         f"| --- | --- | --- | --- | --- |\n| quiz | `quiz.jsonl` | {sha256} | 2 | 6 |\n")


def test_an_eval_file_must_be_a_dep_of_the_split_stage(work: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(work)
    write_quiz(work)
    assert run_split(work, extra_params=EVAL["contamination"]) == 1
    assert capsys.readouterr().err == (
        "error: contamination.eval.quiz quiz.jsonl is not a dep of the split stage; add '- quiz.jsonl' to "
        "stages.split.deps in dvc.yaml so that dvc repro notices when the file changes\n")
    assert not (work / "shards").exists()
