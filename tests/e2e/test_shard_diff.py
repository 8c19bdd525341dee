"""The record-level sharding diff (src/shard_diff.py) on the real dvc CLI: planted moves, additions and removals
are reported exactly, and a revision's shards are pulled from the remote when they are not in the cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.repo import Repo, cache_objects, edit_params

pytestmark = pytest.mark.e2e


def plant_changes(document: dict) -> None:
    """Leave records 0..9 out, move records 3900..3999 from shard 1 to shard 2, and add 5 records to shard 4."""
    document["raw"]["sources"]["additions"]["sample"]["records"] = 990
    document["split"]["allow_gaps"] = True
    document["split"]["shards"].update(shard1={"start": 10, "stop": 3900}, shard4=16005)


def test_planted_moves_additions_and_removals_are_reported_exactly(repo: Repo) -> None:
    repo.dvc("repro")
    repo.commit("four shards")
    edit_params(repo, plant_changes)
    repo.dvc("repro")

    report = repo.python("-m", "src.shard_diff", "HEAD", "--examples", "0").stdout
    assert report == ("HEAD -> workspace: 16,000 -> 15,995 records\n"
                      "  stayed in the same shard: 15,890\n"
                      "  moved to another shard:   100\n"
                      "    1_of_4 -> 2_of_4: 100\n"
                      "  added:                    5\n"
                      "  removed:                  10\n")
    as_json = json.loads(repo.python("-m", "src.shard_diff", "HEAD", "--json", "--examples", "1").stdout)
    assert {key: as_json[key] for key in ("stayed", "moved", "added", "removed", "records")} == {
        "stayed": 15890, "moved": 100, "added": 5, "removed": 10, "records": {"HEAD": 16000, "workspace": 15995}}
    assert as_json["moves"] == [{"from": "1_of_4", "to": "2_of_4", "records": 100}]
    assert sorted(as_json["examples"]) == ["added", "moved 1_of_4 -> 2_of_4", "removed"]


def test_a_revision_absent_from_the_cache_is_read_from_the_remote(repo: Repo, tmp_path: Path) -> None:
    repo.dvc("repro")
    repo.dvc("push")
    repo.commit("four shards")
    edit_params(repo, lambda document: document["split"]["shards"].update(shard1=3900))
    repo.dvc("repro")
    repo.dvc("push")
    repo.commit("shard 1 ends at 3900")

    clone = repo.clone(tmp_path / "work" / "clone")  # beside the repository: the same default local remote
    assert cache_objects(clone) == {}
    report = clone.python("-m", "src.shard_diff", "HEAD~1", "HEAD", "--examples", "0").stdout
    assert report.splitlines()[:4] == ["HEAD~1 -> HEAD: 16,000 -> 16,000 records",
                                       "  stayed in the same shard: 15,900", "  moved to another shard:   100",
                                       "    1_of_4 -> 2_of_4: 100"]
    # DVC streamed the two revisions' shard listings and shards from the remote: nothing was pulled into the
    # clone's cache or workspace.
    assert cache_objects(clone) == {}
    assert not (clone.path / "data" / "shards").exists()


def test_an_unknown_revision_is_one_error_line(repo: Repo) -> None:
    failed = repo.python("-m", "src.shard_diff", "no-such-experiment", check=False)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr == ("error: 'no-such-experiment' is neither a git revision nor an experiment here; see "
                             "`dvc exp list` and `git log`\n")
