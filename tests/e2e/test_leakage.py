"""The leakage and contamination certificate through the real dvc CLI, as docs/leakage.md tells it."""
from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from tests.e2e.repo import Repo, edit_params, ran_stages
from tests.project import readme_command

pytestmark = pytest.mark.e2e

# Three records of our own, appended to the sample (merged indices 16000..16002); their text is nowhere in it.
EXTRA = [
    {"index": "x0", "instruction": "架空の天文台ゼタ観測所は何を記録していますか？", "input": "",
     "output": "ゼタ観測所は百二十年にわたり北天の変光星七百十一個の光度曲線を毎晩欠かさず記録している。",
     "category": "open_qa"},
    {"index": "x1", "instruction": "ゼタ観測所の所長の名前は？", "input": "",
     "output": "初代所長は架空の人物である鷺ノ宮燈子博士だった。", "category": "open_qa"},
    {"index": "x2", "instruction": "鷺ノ宮燈子博士が発見した彗星の名前を教えてください。", "input": "",
     "output": "わかりません。", "category": "open_qa"},
]
# Planted: item 1 quotes 20 characters of record x0's output; item 2 holds record x2's whole instruction; item 3
# shares only 12 characters in a row with record x1's output ("初代所長は架空の人物であ"); item 4 shares nothing.
# Exactly records 16000 and 16002 are contaminated.
EVALUATION = [
    {"question": "次の文を続けなさい：" + EXTRA[0]["output"][3:23], "answer": "A"},
    {"question": "問題", "answer": EXTRA[2]["instruction"]},
    {"question": "初代所長は架空の人物で" + "あった。", "answer": "B"},
    {"question": "まったく関係のない、長めの評価用の問題文がここに入ります。", "answer": "C"},
]


def ngrams(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def test_contamination_by_evaluation_files_is_certified_per_shard(repo: Repo) -> None:
    (repo.path / "extra.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in EXTRA),
                                           encoding="utf-8")
    (repo.path / "eval").mkdir()
    (repo.path / "eval" / "quiz.jsonl").write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in EVALUATION), encoding="utf-8")

    def edit(document: dict) -> None:
        document["raw"]["sources"]["extra"] = {"path": "extra.jsonl", "license": "cc0-1.0"}
        document["contamination"]["eval"] = {"quiz": "eval/quiz.jsonl"}
    edit_params(repo, edit)
    # The split refuses an evaluation file that is not one of its deps, saying what to add.
    dvc_yaml = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    dvc_yaml["stages"]["raw"]["deps"].append("extra.jsonl")
    (repo.path / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    refused = repo.sh("python3 -m src.reshard 4 --even && dvc repro", check=False)
    assert refused.returncode != 0
    assert ("error: contamination.eval.quiz eval/quiz.jsonl is not a dep of the split stage; add "
            "'- eval/quiz.jsonl' to stages.split.deps in dvc.yaml so that dvc repro notices when the file "
            "changes\n") in refused.stderr
    dvc_yaml["stages"]["split"]["deps"].append("eval/quiz.jsonl")
    (repo.path / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    built = repo.dvc("repro")
    assert ran_stages(built.stdout) == ["split", "plots_page"]  # the refused run stopped before the page

    shown = repo.sh(readme_command("dvc metrics show")).stdout
    assert "contaminated_records" in shown and "near_duplicate_pairs" in shown
    metrics = json.loads(repo.read_bytes("metrics/split.json"))
    assert metrics["contaminated_records"] == 2
    table = json.loads(repo.read_bytes("plots/contamination.json"))
    assert [(row["shard"], row["records"], row["contaminated"], row["indices"]) for row in table] == [
        ("1_of_4", 4001, 0, []), ("2_of_4", 4001, 0, []), ("3_of_4", 4001, 0, []), ("4_of_4", 4000, 2, [16000, 16002])]
    # The same answer from the 13-character substrings themselves, over every shard record.
    evaluation = set().union(*(ngrams(text, 13) for item in EVALUATION for text in item.values()))
    records = [json.loads(line) for k in range(1, 5)
               for line in repo.shard(f"{k}_of_4").read_text(encoding="utf-8").splitlines()]
    assert [number for number, record in enumerate(records)
            if evaluation & (ngrams(record["instruction"], 13) | ngrams(record["output"], 13))] == [16000, 16002]

    # The dataset card beside the shards names the evaluation file, with its checksum, and the count.
    card = repo.read_bytes("data/shards/README.md").decode("utf-8")
    sha256 = hashlib.sha256(repo.read_bytes("eval/quiz.jsonl")).hexdigest()
    assert f"| quiz | `eval/quiz.jsonl` | {sha256} | {len(EVALUATION)} | " in card
    assert "shares 13 characters in a row with an evaluation file: 2\n" in card

    # Editing the evaluation file reruns the split alone.
    with (repo.path / "eval" / "quiz.jsonl").open("a", encoding="utf-8") as stream:
        stream.write(json.dumps({"question": EXTRA[1]["output"]}, ensure_ascii=False) + "\n")
    assert ran_stages(repo.dvc("repro").stdout) == ["split"]
    assert json.loads(repo.read_bytes("metrics/split.json"))["contaminated_records"] == 3


def test_dropping_near_duplicates_in_the_merge_leaves_no_leakage(repo: Repo) -> None:
    repo.dvc("repro")
    before = json.loads(repo.read_bytes("metrics/split.json"))
    assert (before["cross_shard_duplicates"], before["near_duplicate_pairs"]) == (5958, 152777)
    leakage = json.loads(repo.read_bytes("plots/leakage.json"))
    assert sum(row["near_duplicate_pairs"] for row in leakage) == 152777
    assert [(row["shard_a"], row["shard_b"]) for row in leakage] == [
        ("1_of_4", "2_of_4"), ("1_of_4", "3_of_4"), ("1_of_4", "4_of_4"), ("2_of_4", "3_of_4"), ("2_of_4", "4_of_4"),
        ("3_of_4", "4_of_4")]
    example = leakage[0]["examples"]["exact"][0]
    merged = repo.read_bytes("data/merged/databricks-dolly-16k-ja.jsonl").splitlines()
    first, second = (json.loads(merged[example[key]]) for key in ("a", "b"))
    assert (first["instruction"], first["input"]) == (second["instruction"], second["input"])
    repo.commit("baseline")

    run = repo.sh(readme_command(
        "python3 -m src.reshard 4 --even && dvc exp run -n no-near-duplicates -S merge.drop_near_duplicates=true"))
    assert ran_stages(run.stdout) == ["params", "merge", "split"]
    merge = json.loads(repo.read_bytes("metrics/merge.json"))
    assert merge["duplicates"]["near_dropped"] == 7773 and merge["records"] == 16000 - 7773
    after = json.loads(repo.read_bytes("metrics/split.json"))
    # The split judges with the merge's signatures and bands: nothing near-duplicate is left across shards.
    assert (after["cross_shard_duplicates"], after["near_duplicate_pairs"]) == (0, 0)
    assert json.loads(repo.read_bytes("plots/leakage.json")) == []
