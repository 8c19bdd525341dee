"""The pipeline through the real dvc CLI: default run, no-op rerun, one-range change, resharding, real data."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from src.sample import sample_records
from tests.conftest import readme_command
from tests.e2e.conftest import Repo, edit_params, lock_outs, ran_stages

pytestmark = pytest.mark.e2e

MERGED = "data/merged/databricks-dolly-16k-ja.jsonl"


def projection_lines(records) -> list[bytes]:
    """The published shard format, computed independently of src/: json.dumps of the three fields."""
    return [(json.dumps({"instruction": r["instruction"], "input": r["input"], "output": r["output"]},
                        ensure_ascii=False) + "\n").encode("utf-8") for r in records]


def merged_records(repo: Repo) -> list[dict]:
    return [json.loads(line) for line in repo.read_bytes(MERGED).splitlines()]


def shard_names(repo: Repo) -> list[str]:
    return list(yaml.safe_load((repo.path / "params.yaml").read_text())["split"]["shards"])








def test_default_run_reproduces_the_committed_lock_and_rerun_is_a_no_op(repo: Repo) -> None:
    first = repo.sh(readme_command("python3 -m pip install -r requirements.txt && dvc repro"))
    assert ran_stages(first.stdout) == ["raw", "merge", "split@1_of_4", "split@2_of_4", "split@3_of_4",
                                        "split@4_of_4"]
    # The committed dvc.lock is byte-identical: the outputs reproduce on this machine.
    repo.git("diff", "--exit-code", "dvc.lock")

    records = merged_records(repo)
    assert len(records) == 16000
    assert [r["index"] for r in records] == [str(n) for n in range(16000)]
    assert [(r["source"], r["source_index"]) for r in records[15014:15016]] == [("dolly_ja", "15014"),
                                                                                ("additions", "0")]
    expected = projection_lines(records)
    for number, name in enumerate(["1_of_4", "2_of_4", "3_of_4", "4_of_4"]):
        assert repo.shard(name).read_bytes() == b"".join(expected[number * 4000:(number + 1) * 4000])

    second = repo.dvc("repro")
    assert ran_stages(second.stdout) == []
    assert "Data and pipelines are up to date." in second.stdout
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_changing_one_boundary_reruns_only_the_two_shards_it_touches(repo: Repo) -> None:
    repo.dvc("repro")
    repo.commit("reproduced")
    before = lock_outs(repo)

    def move_boundary(document: dict) -> None:
        document["split"]["shards"]["2_of_4"]["stop"] = 7000
        document["split"]["shards"]["3_of_4"]["start"] = 7000

    edit_params(repo, move_boundary)
    diff = repo.sh(readme_command("dvc params diff")).stdout
    assert re.search(r"split\.shards\.2_of_4\.stop\s+8000\s+7000", diff), diff
    assert re.search(r"split\.shards\.3_of_4\.start\s+8000\s+7000", diff), diff
    assert "1_of_4" not in diff and "4_of_4" not in diff

    status = repo.sh(readme_command("dvc status")).stdout
    assert "split@2_of_4" in status and "split@3_of_4" in status
    assert "split@1_of_4" not in status and "split@4_of_4" not in status

    assert ran_stages(repo.dvc("repro").stdout) == ["params", "split@2_of_4", "split@3_of_4"]
    after = lock_outs(repo)
    for unchanged in ("raw", "merge", "1_of_4", "4_of_4"):
        paths = [p for p in before if unchanged in p or p.startswith(f"data/{unchanged}")]
        assert paths and all(after[p] == before[p] for p in paths), unchanged
    assert sum(1 for _ in repo.shard("2_of_4").open("rb")) == 3000
    assert sum(1 for _ in repo.shard("3_of_4").open("rb")) == 5000


def test_removing_a_shard_without_changing_the_count_is_refused_not_up_to_date(repo: Repo) -> None:
    repo.dvc("repro")
    lock = repo.read_bytes("dvc.lock")
    edit_params(repo, lambda document: document["split"]["shards"].pop("4_of_4"))
    # No stage of the removed shard is left to notice, and no other shard's params changed: the params stage is.
    assert repo.dvc("status").stdout == "params:\n\tchanged deps:\n\t\tmodified:           params.yaml\n"
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0 and ran_stages(failed.stdout) == ["params"]
    assert ("error: split.count is 4 but split.shards names 3 shards; make them agree (python3 -m src.reshard N "
            "rewrites both)\n") in failed.stderr
    assert repo.read_bytes("dvc.lock") == lock


def test_resharding_to_eight_gives_eight_shards_that_concatenate_to_the_merged_projection(repo: Repo) -> None:
    repo.dvc("repro")
    output = repo.sh(readme_command("python3 -m src.reshard 8 && dvc repro")).stdout
    assert output.startswith("params.yaml: split.count = 8, 16000 records, shards 1_of_8 .. 8_of_8\n")
    assert shard_names(repo) == [f"{k}_of_8" for k in range(1, 9)]
    assert ran_stages(output) == ["params", *(f"split@{k}_of_8" for k in range(1, 9))]
    shards = [repo.shard(f"{k}_of_8").read_bytes() for k in range(1, 9)]
    assert [shard.count(b"\n") for shard in shards] == [2000] * 8
    assert b"".join(shards) == b"".join(projection_lines(merged_records(repo)))


def test_an_experiment_with_another_sharding_is_compared_by_params_and_metrics(repo: Repo) -> None:
    repo.dvc("repro")
    repo.commit("baseline")
    ran = ran_stages(repo.sh(readme_command("python3 -m src.reshard 5 && dvc exp run -n five-shards")).stdout)
    assert ran == ["params", *(f"split@{k}_of_5" for k in range(1, 6))]

    table = repo.sh(readme_command("dvc exp show --only-changed")).stdout
    assert "[five-shards]" in table and "metrics/shards/1_of_5.json:records" in table
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    five = next(exp for exp in experiments if exp["name"] == "five-shards")
    data = five["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["split"]["count"] == 5
    assert data["metrics"]["metrics/shards/5_of_5.json"]["data"]["records"] == 3200

    diff = repo.sh(readme_command("dvc params diff HEAD five-shards")).stdout
    assert re.search(r"split\.count\s+4\s+5", diff), diff
    assert re.search(r"split\.shards\.5_of_5\.stop\s+-\s+16000", diff), diff
    metrics = repo.sh(readme_command("dvc metrics diff HEAD five-shards")).stdout
    assert re.search(r"metrics/shards/1_of_5\.json\s+records\s+-\s+3200", metrics), metrics
    assert re.search(r"metrics/shards/1_of_4\.json\s+records\s+4000\s+-", metrics), metrics


def test_real_dataset_plus_additions_gives_16000_records_in_four_exact_shards(repo: Repo, real_data: Path) -> None:
    # As the README shows: the real file by its path beside the repository (linked, never copied),
    # plus a 985-record additions file, both declared as deps of the raw stage.
    (repo.path.parent / "shared").symlink_to(real_data.parent.parent, target_is_directory=True)
    additions_records = list(sample_records(985, 7))
    (repo.path.parent / "additions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in additions_records), encoding="utf-8")
    sources = {"dolly_ja": {"path": "../shared/data/databricks-dolly-15k-ja.json"},
               "additions": {"path": "../additions.jsonl"}}
    edit_params(repo, lambda document: document["raw"].update(sources=sources))
    dvc_yaml = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    dvc_yaml["stages"]["raw"]["deps"] += [spec["path"] for spec in sources.values()]
    (repo.path / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    repo.dvc("repro")

    real_records = json.loads(real_data.read_text(encoding="utf-8"))
    expected = projection_lines(real_records + additions_records)
    assert len(expected) == 16000
    for number in range(4):
        assert repo.shard(f"{number + 1}_of_4").read_bytes() == b"".join(expected[number * 4000:(number + 1) * 4000])

    merge_metrics = json.loads(repo.read_bytes("metrics/merge.json"))
    prompts = [(r["instruction"], r["input"]) for r in real_records + additions_records]
    lines = [(r["instruction"], r["input"], r["output"]) for r in real_records + additions_records]
    assert merge_metrics["records"] == 16000
    assert merge_metrics["sources"] == {"dolly_ja": 15015, "additions": 985}
    assert merge_metrics["duplicates"] == {"exact": len(lines) - len(set(lines)),
                                           "same_prompt": len(prompts) - len(set(prompts)), "dropped": 0}
    real_prompts = prompts[:15015]
    assert len(real_prompts) - len(set(real_prompts)) == 216  # as the dataset's README states
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."

    extra = list(sample_records(986, 7))[-1]
    with (repo.path.parent / "additions.jsonl").open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(extra, ensure_ascii=False) + "\n")
    status = repo.dvc("status").stdout
    additions_path = re.escape(str(repo.path.parent / "additions.jsonl"))  # dvc status prints it absolute
    assert re.search(rf"raw:\s+changed deps:\s+modified:\s+{additions_path}\n", status), status
    # One more record than the ranges cover: the split stops, naming the gap, before writing a shard.
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0 and ran_stages(failed.stdout) == ["raw", "merge", "split@1_of_4"]
    assert ("error: split.shards: records 16000..16000 are in no shard (after '4_of_4'); set its stop to 16001 "
            "or set split.allow_gaps: true\n") in failed.stderr
    assert not repo.shard("1_of_4").exists()
    assert json.loads(repo.read_bytes("metrics/merge.json"))["sources"]["additions"] == 986
