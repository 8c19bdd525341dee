"""Comparing shardings as DVC experiments, as README.md and docs/experiments.md tell it, on the real dvc CLI."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest

from tests.e2e.repo import Repo, ran_stages
from tests.project import PROJECT_ROOT, readme_command

pytestmark = pytest.mark.e2e

HEADLINE = ["shards", "records_min", "records_max", "bytes_min", "bytes_max", "category_deviation_max",
            "cross_shard_duplicates", "near_duplicate_pairs"]
# What README.md shows for `dvc metrics diff HEAD eight-shards`, byte for byte.
METRICS_DIFF_EIGHT = """\
Path                Metric                  HEAD     eight-shards    Change
metrics/split.json  bytes_max               2928478  1470849         -1457629
metrics/split.json  bytes_min               2894420  1424783         -1469637
metrics/split.json  category_deviation_max  0.69     1.55            0.86
metrics/split.json  cross_shard_duplicates  5958     6887            929
metrics/split.json  near_duplicate_pairs    152777   178337          25560
metrics/split.json  records_max             4000     2000            -2000
metrics/split.json  records_min             4000     2000            -2000
metrics/split.json  shards                  4        8               4
"""
QUEUE_WAIT_SECONDS = 600


def experiments_table(repo: Repo) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(repo.dvc("exp", "show", "--csv").stdout)))


def experiment_row(rows: list[dict[str, str]], name: str) -> dict[str, str]:
    return next(row for row in rows if row["Experiment"] == name)


def no_warnings(result) -> None:
    assert "WARNING" not in result.stdout + result.stderr, result.stderr


def test_readme_walkthrough_compares_a_moved_boundary_and_eight_shards_then_keeps_one(repo: Repo) -> None:
    repo.dvc("repro")
    repo.commit("baseline")

    moved = repo.sh(readme_command("dvc exp run -n shard1-ends-at-3900 -S split.shards.shard1=3900"))
    assert ran_stages(moved.stdout) == ["params", "split"]
    no_warnings(moved)
    eight = repo.sh(readme_command("python3 -m src.reshard 8 && dvc exp run -n eight-shards"))
    assert ran_stages(eight.stdout) == ["params", "split"]
    no_warnings(eight)

    shown = repo.sh(readme_command("dvc exp show --only-changed"), env={"COLUMNS": "250"}).stdout
    assert "[eight-shards]" in shown and "[shard1-ends-at-3900]" in shown
    header = next(csv.reader(io.StringIO(repo.dvc("exp", "show", "--only-changed", "--csv").stdout)))
    assert len(header) <= 30, header
    assert "split.count" in header and set(HEADLINE) <= set(header)
    assert not [column for column in header if column.startswith("metrics/") or "categories" in column]

    rows = experiments_table(repo)
    assert [experiment_row(rows, "eight-shards")[key] for key in ("shards", "records_min", "split.count")] == \
        ["8", "2000", "8"]
    moved_row = experiment_row(rows, "shard1-ends-at-3900")
    assert [moved_row[key] for key in ("records_min", "records_max", "split.shards.shard1")] == ["3900", "4100", "3900"]

    # The Change column has a value in every row, and the rows come in one order, run after run.
    diff = repo.sh(readme_command("dvc metrics diff HEAD eight-shards")).stdout
    assert diff == METRICS_DIFF_EIGHT
    assert METRICS_DIFF_EIGHT in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert repo.dvc("metrics", "diff", "HEAD", "eight-shards").stdout == diff
    moved_diff = json.loads(repo.dvc("metrics", "diff", "HEAD", "shard1-ends-at-3900", "--json").stdout)
    assert moved_diff["metrics/split.json"]["records_min"] == {"old": 4000, "new": 3900, "diff": -100}
    assert moved_diff["metrics/split.json"]["records_max"] == {"old": 4000, "new": 4100, "diff": 100}

    record_diff = repo.sh(readme_command("python3 -m src.shard_diff HEAD eight-shards")).stdout
    documented = (PROJECT_ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    assert record_diff.split("  e.g.")[0] in documented
    assert record_diff.startswith("HEAD -> eight-shards: 16,000 -> 16,000 records\n  stayed in the same shard: 0\n")

    plots = repo.sh(readme_command("dvc plots diff HEAD eight-shards"))
    page = (repo.path / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in page and "{plot_divs}" not in page, plots.stdout

    # Keep the eight shards, drop every experiment.
    repo.sh(readme_command("dvc exp apply eight-shards"))
    repo.sh(readme_command('git add -A && git commit -m "eight shards"'))
    repo.sh(readme_command("dvc exp remove -A"))
    assert repo.dvc("exp", "list", "--all-commits").stdout == ""
    assert repo.dvc("status").stdout == "Data and pipelines are up to date.\n"
    assert len(list((repo.path / "data" / "shards").glob("*.jsonl"))) == 8
    assert json.loads(repo.read_bytes("metrics/split.json"))["shards"] == 8


def test_a_queued_batch_of_three_counts_is_tabulated(repo: Repo) -> None:
    repo.dvc("repro")
    repo.commit("baseline")
    queued = repo.sh(readme_command(
        "for n in 2 3 6; do python3 -m src.reshard $n && dvc exp run --queue -n shards-$n; done"))
    assert queued.stdout.count("Queued experiment 'shards-") == 3, queued.stdout
    repo.sh(readme_command("git checkout params.yaml"))
    repo.sh(readme_command("dvc queue start"))
    deadline = time.monotonic() + QUEUE_WAIT_SECONDS
    while True:
        status = repo.sh(readme_command("dvc queue status")).stdout
        if status.count("Success") == 3:
            break
        assert "Failed" not in status, status
        assert time.monotonic() < deadline, f"the queue did not finish within {QUEUE_WAIT_SECONDS} s:\n{status}"
        time.sleep(2)
    rows = experiments_table(repo)
    assert {count: [experiment_row(rows, f"shards-{count}")[key] for key in ("shards", "records_min", "records_max")]
            for count in (2, 3, 6)} == {2: ["2", "8000", "8000"], 3: ["3", "5333", "5334"],
                                        6: ["6", "2666", "2667"]}
    # The workspace kept the committed sharding.
    assert repo.git("status", "--porcelain").stdout == ""
