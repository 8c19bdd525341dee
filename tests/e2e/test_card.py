"""The dataset card the split writes beside the shards (data/shards/README.md): every shard loads through it with
Hugging Face `datasets`, and its license follows the sources."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.repo import Repo, edit_params
from tests.e2e.test_pipeline import use_sources

pytestmark = pytest.mark.e2e

CARD = "data/shards/README.md"


def card_header(repo: Repo) -> dict:
    return yaml.safe_load(repo.read_bytes(CARD).decode("utf-8").split("---\n")[1])


def test_every_shard_loads_through_the_card_with_datasets(repo: Repo, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    repo.dvc("repro")
    header = card_header(repo)
    assert header["license"] == "cc0-1.0"  # the sample sources' license, from params.yaml
    assert [config["config_name"] for config in header["configs"]] == ["1_of_4", "2_of_4", "3_of_4", "4_of_4"]
    shard_table = {row["shard"]: row for row in json.loads(repo.read_bytes("plots/shards.json"))}
    for config in header["configs"]:
        (data_file,) = config["data_files"]
        path = repo.path / "data" / "shards" / data_file["path"]
        loaded = datasets.load_dataset("json", data_files=str(path), split=data_file["split"],
                                       cache_dir=str(tmp_path / "hf-cache"))
        assert loaded.column_names == ["instruction", "input", "output"]
        assert loaded.num_rows == shard_table[config["config_name"]]["records"] == 4000
        assert loaded[0] == json.loads(path.read_bytes().splitlines()[0])
        assert f"`{shard_table[config['config_name']]['md5']}`" in repo.read_bytes(CARD).decode("utf-8")


def test_the_card_takes_the_real_datasets_share_alike_license_and_refuses_another(repo: Repo,
                                                                                    real_data: Path) -> None:
    use_sources(repo, real_data, {"dolly_ja": {"path": "../shared/data/databricks-dolly-15k-ja.json",
                                               "license": "cc-by-sa-3.0"}})
    repo.dvc("repro", "merge")
    repo.python("-m", "src.reshard", "4")
    repo.dvc("repro")
    assert card_header(repo)["license"] == "cc-by-sa-3.0"
    card = repo.read_bytes(CARD).decode("utf-8")
    assert "| dolly_ja | `../shared/data/databricks-dolly-15k-ja.json` | sha256 " in card
    assert "| 15015 | 15015 |" in card

    edit_params(repo, lambda document: document["card"].update(license="mit"))
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0
    assert ("error: card.license 'mit' contradicts source 'dolly_ja''s share-alike license 'cc-by-sa-3.0'; shards "
            "made from it must carry 'cc-by-sa-3.0' (set card.license to it, or remove it to take the sources')\n"
            in failed.stderr)
    assert not (repo.path / "data" / "shards").exists()
