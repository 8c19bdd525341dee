"""Split strategies through the real dvc CLI: stratified proportions on the real data, a shuffle that is the same
for the same seed and another for another seed."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.repo import Repo, base_environment, make_repo, ran_stages
from tests.e2e.test_pipeline import projection_lines, use_sources

pytestmark = pytest.mark.e2e


def shard_bytes(repo: Repo, count: int) -> list[bytes]:
    return [repo.shard(f"{k}_of_{count}").read_bytes() for k in range(1, count + 1)]


def is_subsequence(lines: list[bytes], reference: list[bytes]) -> bool:
    position = iter(reference)
    return all(any(line == candidate for candidate in position) for line in lines)


@pytest.mark.parametrize("count", [4, 8])
def test_stratified_shards_hold_every_category_within_one_record_of_its_share(repo: Repo, real_data: Path,
                                                                               count: int) -> None:
    use_sources(repo, real_data, {"dolly_ja": {"path": "../shared/data/databricks-dolly-15k-ja.json"}})
    repo.dvc("repro", "merge")
    repo.python("-m", "src.reshard", str(count))
    result = repo.dvc("exp", "run", "-S", "split.strategy=stratified")
    assert "split" in ran_stages(result.stdout)

    real = json.loads(real_data.read_text(encoding="utf-8"))
    reference = projection_lines(real)
    shards = shard_bytes(repo, count)
    # Every record exactly once, each shard in merged order.
    assert Counter(line for shard in shards for line in shard.splitlines(keepends=True)) == Counter(reference)
    assert all(is_subsequence(shard.splitlines(keepends=True), reference) for shard in shards)
    whole = Counter(record["category"] for record in real)
    rows = json.loads(repo.read_bytes("plots/categories.json"))
    sizes = {row["shard"]: 0 for row in rows}
    for row in rows:
        sizes[row["shard"]] += row["records"]
    assert list(sizes.values()) == [shard.count(b"\n") for shard in shards]
    for row in rows:
        share = sizes[row["shard"]] * whole[row["category"]] / len(real)
        assert abs(row["records"] - share) <= 1, row
    metrics = json.loads(repo.read_bytes("metrics/split.json"))
    assert (metrics["strategy"], metrics["seed"]) == ("stratified", 0)
    # One record of the smallest shard, in percentage points (plus rounding): contiguous shards are far above.
    assert metrics["category_deviation_max"] <= round(100 / min(sizes.values()), 2) + 0.01


def test_the_shuffle_is_reproducible_and_depends_on_the_seed(repo: Repo, tmp_path: Path) -> None:
    repo.dvc("repro")
    contiguous = shard_bytes(repo, 4)
    repo.dvc("exp", "run", "-S", "split.strategy=shuffle", "-S", "split.seed=1")
    shuffled = shard_bytes(repo, 4)
    assert shuffled != contiguous
    assert sorted(b"".join(shuffled).splitlines()) == sorted(b"".join(contiguous).splitlines())
    assert [shard.count(b"\n") for shard in shuffled] == [4000] * 4

    # Another machine (another repository, home and cache), the same seed: the same bytes.
    (tmp_path / "home2").mkdir()
    other = make_repo(tmp_path / "elsewhere" / "repo", base_environment(tmp_path / "home2"))
    other.dvc("exp", "run", "-S", "split.strategy=shuffle", "-S", "split.seed=1")
    assert shard_bytes(other, 4) == shuffled
    other.dvc("exp", "run", "-S", "split.seed=2")
    reseeded = shard_bytes(other, 4)
    assert reseeded != shuffled
    assert sorted(b"".join(reseeded).splitlines()) == sorted(b"".join(contiguous).splitlines())
    assert json.loads(other.read_bytes("metrics/split.json"))["seed"] == 2
