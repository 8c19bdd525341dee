"""What a stage reads of dvc.yaml: its deps, so that a file named in params.yaml is checked to be one of them
(otherwise `dvc repro` would not notice when that file changes)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from src.core.errors import DatasetError


def stage_deps(dvc_yaml: Path, stage: str) -> list[str]:
    try:
        stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
        return [str(dep) for dep in stages[stage].get("deps", [])]
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        raise DatasetError(f"{dvc_yaml}: cannot read the {stage} stage's deps") from None


def check_declared(stage: str, paths: Mapping[str, str], declared_deps: list[str]) -> None:
    """Every path of ``paths`` (params key: path) must be a dep of ``stage``."""
    declared = {os.path.normpath(dep) for dep in declared_deps}
    for key, path in paths.items():
        if os.path.normpath(path) not in declared:
            raise DatasetError(
                f"{key} {path} is not a dep of the {stage} stage; add '- {path}' to stages.{stage}.deps in "
                "dvc.yaml so that dvc repro notices when the file changes")
