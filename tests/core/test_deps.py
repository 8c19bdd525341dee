from pathlib import Path

import pytest

from src.core.deps import check_declared, stage_deps
from src.core.errors import DatasetError


def test_a_path_from_params_must_be_a_dep_of_its_stage() -> None:
    check_declared("raw", {"raw.sources.extra.path": "inputs/extra.jsonl"}, ["src/raw.py", "./inputs/extra.jsonl"])
    with pytest.raises(DatasetError) as error:
        check_declared("raw", {"raw.sources.extra.path": "inputs/extra.jsonl"}, ["src/raw.py"])
    assert str(error.value) == (
        "raw.sources.extra.path inputs/extra.jsonl is not a dep of the raw stage; add '- inputs/extra.jsonl' to "
        "stages.raw.deps in dvc.yaml so that dvc repro notices when the file changes")


def test_stage_deps_reads_dvc_yaml(tmp_path: Path) -> None:
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text("stages:\n  split:\n    cmd: x\n    deps:\n      - a.json\n      - src/split.py\n")
    assert stage_deps(dvc_yaml, "split") == ["a.json", "src/split.py"]
    with pytest.raises(DatasetError, match=r"dvc.yaml: cannot read the merge stage's deps$"):
        stage_deps(dvc_yaml, "merge")
