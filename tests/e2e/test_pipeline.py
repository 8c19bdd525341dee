"""The pipeline through the real dvc CLI: default run, no-op rerun, one-range change, resharding, real data."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from src.sources.sample import sample_records
from tests.e2e.repo import SHARD_TEMPLATE, Repo, dir_listing, edit_params, lock_outs, ran_stages
from tests.project import readme_command

pytestmark = pytest.mark.e2e

MERGED = "data/merged/databricks-dolly-16k-ja.jsonl"


def projection_lines(records) -> list[bytes]:
    """The published shard format, computed independently of src/: json.dumps of the three fields."""
    return [(json.dumps({"instruction": r["instruction"], "input": r["input"], "output": r["output"]},
                        ensure_ascii=False) + "\n").encode("utf-8") for r in records]


def merged_records(repo: Repo) -> list[dict]:
    return [json.loads(line) for line in repo.read_bytes(MERGED).splitlines()]


def shard_files(repo: Repo) -> list[str]:
    return sorted(path.name for path in (repo.path / "data" / "shards").iterdir())


def shard_file_names(count: int) -> list[str]:
    """The files of data/shards/ with ``count`` shards: the shards and the dataset card."""
    return sorted([*(Path(SHARD_TEMPLATE.format(f"{k}_of_{count}")).name for k in range(1, count + 1)), "README.md"])


def test_default_run_reproduces_the_committed_lock_and_rerun_is_a_no_op(repo: Repo) -> None:
    first = repo.sh(readme_command("python3 -m pip install -r requirements.txt && dvc repro"))
    assert ran_stages(first.stdout) == ["raw", "merge", "split", "plots_page"]
    # The committed dvc.lock, metrics and plots tables are byte-identical: the outputs reproduce on this machine.
    assert repo.git("status", "--porcelain").stdout == ""

    records = merged_records(repo)
    assert len(records) == 16000
    assert [r["index"] for r in records] == [str(n) for n in range(16000)]
    assert [(r["source"], r["source_index"]) for r in records[15014:15016]] == [("dolly_ja", "15014"),
                                                                                ("additions", "0")]
    expected = projection_lines(records)
    assert shard_files(repo) == shard_file_names(4)
    for number, name in enumerate(["1_of_4", "2_of_4", "3_of_4", "4_of_4"]):
        assert repo.shard(name).read_bytes() == b"".join(expected[number * 4000:(number + 1) * 4000])

    second = repo.dvc("repro")
    assert ran_stages(second.stdout) == []
    assert "Data and pipelines are up to date." in second.stdout
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_moving_one_boundary_rewrites_only_the_two_shards_it_touches(repo: Repo) -> None:
    repo.dvc("repro")
    repo.commit("reproduced")
    before_lock, before = lock_outs(repo), dir_listing(repo, "data/shards")

    edit_params(repo, lambda document: document["split"]["shards"].update(shard2=7000))
    diff = repo.sh(readme_command("dvc params diff")).stdout
    assert diff == ("Path         Param                HEAD    workspace\n"
                    "params.yaml  split.shards.shard2  8000    7000\n")
    status = repo.sh(readme_command("dvc status")).stdout
    # The stages depend on the split section as a whole; `dvc params diff` names the value.
    assert status == ("params:\n\tchanged deps:\n\t\tparams.yaml:\n\t\t\tmodified:           split\n"
                      "split:\n\tchanged deps:\n\t\tparams.yaml:\n\t\t\tmodified:           split\n")

    assert ran_stages(repo.dvc("repro").stdout) == ["params", "split"]
    after_lock, after = lock_outs(repo), dir_listing(repo, "data/shards")
    for unchanged in ("data/raw", "data/merged/databricks-dolly-16k-ja.jsonl"):
        assert after_lock[unchanged] == before_lock[unchanged]
    # The two shards and the card (its table gives every shard's records and md5).
    assert [name for name in before if before[name] != after[name]] == [
        "README.md", Path(SHARD_TEMPLATE.format("2_of_4")).name, Path(SHARD_TEMPLATE.format("3_of_4")).name]
    assert sum(1 for _ in repo.shard("2_of_4").open("rb")) == 3000
    assert sum(1 for _ in repo.shard("3_of_4").open("rb")) == 5000
    metrics = json.loads(repo.dvc("metrics", "diff", "--json").stdout)["metrics/split.json"]
    assert (metrics["records_min"], metrics["records_max"]) == ({"old": 4000, "new": 3000, "diff": -1000},
                                                                {"old": 4000, "new": 5000, "diff": 1000})
    assert "shards" not in metrics  # unchanged values are left out


def test_removing_a_shard_without_changing_the_count_is_refused_not_up_to_date(repo: Repo) -> None:
    repo.dvc("repro")
    lock = repo.read_bytes("dvc.lock")
    edit_params(repo, lambda document: document["split"]["shards"].pop("shard4"))
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0 and ran_stages(failed.stdout) == ["params"]
    assert ("error: split.count is 4 but split.shards names 3 shards; make them agree (python3 -m src.reshard N "
            "rewrites both)\n") in failed.stderr
    assert repo.read_bytes("dvc.lock") == lock


def test_resharding_to_eight_leaves_exactly_eight_shards_and_no_stale_lock_entry(repo: Repo) -> None:
    repo.dvc("repro")
    output = repo.sh(readme_command("python3 -m src.reshard 8 && dvc repro")).stdout
    assert output.startswith("params.yaml: split.count = 8, 16000 records, shards 1_of_8 .. 8_of_8\n")
    assert ran_stages(output) == ["params", "split"]
    assert shard_files(repo) == shard_file_names(8)
    shards = [repo.shard(f"{k}_of_8").read_bytes() for k in range(1, 9)]
    assert [shard.count(b"\n") for shard in shards] == [2000] * 8
    assert b"".join(shards) == b"".join(projection_lines(merged_records(repo)))
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())
    assert list(lock["stages"]) == ["params", "raw", "merge", "split", "plots_page"]
    assert list(lock["stages"]["split"]["params"]["params.yaml"]["split"]["shards"]) == [f"shard{k}" for k in range(1, 9)]

    # And back: the committed state again, byte for byte, restored from DVC's run cache.
    back = repo.sh("python3 -m src.reshard 4 && dvc repro").stdout
    assert "Stage 'split' is cached - skipping run, checking out outputs" in back
    assert shard_files(repo) == shard_file_names(4)
    assert repo.git("status", "--porcelain").stdout == ""


def use_sources(repo: Repo, real_data: Path, sources: dict) -> None:
    """The README's recipe: the real file by its path beside the repository (linked, never copied), each path source
    declared as a dep of the raw stage."""
    (repo.path.parent / "shared").symlink_to(real_data.parent.parent, target_is_directory=True)
    edit_params(repo, lambda document: document["raw"].update(sources=sources))
    dvc_yaml = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    dvc_yaml["stages"]["raw"]["deps"] += [spec["path"] for spec in sources.values()]
    (repo.path / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))


def reference_shards(records: list[dict], count: int) -> list[bytes]:
    """The reference conversion: even contiguous shards (the first ones one record longer), json.dumps per row."""
    base, extra = divmod(len(records), count)
    shards, start = [], 0
    for number in range(count):
        stop = start + base + (number < extra)
        shards.append(b"".join(projection_lines(records[start:stop])))
        start = stop
    return shards


def test_even_shards_without_ranges_in_params_and_another_count_by_one_value(repo: Repo) -> None:
    repo.dvc("repro")
    output = repo.sh(readme_command("python3 -m src.reshard 1024 --even && dvc repro")).stdout
    assert ran_stages(output) == ["params", "split"]
    assert "shards:" not in (repo.path / "params.yaml").read_text().split("\nsplit:")[1]
    assert shard_files(repo) == shard_file_names(1024)
    sizes = [repo.shard(f"{k}_of_1024").read_bytes().count(b"\n") for k in range(1, 1025)]
    assert sizes == [16] * 640 + [15] * 384  # 16,000 = 1,024 x 15 + 640: the first 640 take one more
    shards = b"".join(repo.shard(f"{k}_of_1024").read_bytes() for k in range(1, 1025))
    assert shards == b"".join(projection_lines(merged_records(repo)))

    repo.sh(readme_command("dvc exp run -S split.count=8"))
    assert shard_files(repo) == shard_file_names(8)
    assert json.loads(repo.read_bytes("metrics/split.json"))["records_min"] == 2000


def test_the_real_dataset_alone_resharded_to_four_gives_the_reference_shards(repo: Repo, real_data: Path) -> None:
    use_sources(repo, real_data, {"dolly_ja": {"path": "../shared/data/databricks-dolly-15k-ja.json"}})
    repo.sh(readme_command("dvc repro merge"))
    output = repo.sh(readme_command("python3 -m src.reshard 4 && dvc repro")).stdout
    assert output.startswith("params.yaml: split.count = 4, 15015 records, shards 1_of_4 .. 4_of_4\n")

    real_records = json.loads(real_data.read_text(encoding="utf-8"))
    expected = reference_shards(real_records, 4)
    assert [shard.count(b"\n") for shard in expected] == [3754, 3754, 3754, 3753]
    assert [repo.shard(f"{k}_of_4").read_bytes() for k in range(1, 5)] == expected
    merge_metrics = json.loads(repo.read_bytes("metrics/merge.json"))
    assert merge_metrics["sources"] == {"dolly_ja": 15015}
    assert merge_metrics["duplicates"]["same_prompt"] == 216  # as the dataset's README states
    # The leakage figures README.md and docs/leakage.md give for the real dataset in 4 contiguous shards.
    split_metrics = json.loads(repo.read_bytes("metrics/split.json"))
    assert (split_metrics["cross_shard_duplicates"], split_metrics["near_duplicate_pairs"]) == (159, 735)
    leakage = json.loads(repo.read_bytes("plots/leakage.json"))
    assert (len(leakage), sum(row["exact_pairs"] for row in leakage)) == (6, 255)
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_real_dataset_plus_additions_gives_16000_records_in_four_exact_shards(repo: Repo, real_data: Path) -> None:
    additions_records = list(sample_records(985, 7))
    (repo.path.parent / "additions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in additions_records), encoding="utf-8")
    use_sources(repo, real_data, {"dolly_ja": {"path": "../shared/data/databricks-dolly-15k-ja.json"},
                                  "additions": {"path": "../additions.jsonl"}})
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
                                           "same_prompt": len(prompts) - len(set(prompts)), "dropped": 0,
                                           "near_dropped": 0}
    assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."

    extra = list(sample_records(986, 7))[-1]
    with (repo.path.parent / "additions.jsonl").open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(extra, ensure_ascii=False) + "\n")
    status = repo.dvc("status").stdout
    additions_path = re.escape(str(repo.path.parent / "additions.jsonl"))  # dvc status prints it absolute
    assert re.search(rf"raw:\s+changed deps:\s+modified:\s+{additions_path}\n", status), status
    # One more record than the ranges cover: the split stops, naming the gap, before writing a shard.
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0 and ran_stages(failed.stdout) == ["raw", "merge", "split"]
    assert ("error: split.shards: records 16000..16000 are in no shard (after 'shard4'); set its stop to 16001 "
            "(python3 -m src.reshard 4 does) or set split.allow_gaps: true\n") in failed.stderr
    assert not (repo.path / "data" / "shards").exists()
    assert json.loads(repo.read_bytes("metrics/merge.json"))["sources"]["additions"] == 986
