"""dvc.yaml itself: every stage depends on exactly the src modules it runs, and every path it reads or writes."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def local_imports(module: str) -> set[str]:
    """The src modules ``module`` imports, transitively, itself included (as src/NAME.py paths)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / "src" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                pending.append(node.module)
    return {f"src/{name}.py" for name in seen}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def commands(stage: dict) -> list[str]:
    return stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]


def test_each_stage_depends_on_exactly_the_code_it_runs() -> None:
    for name, stage in stages().items():
        stage = stage.get("do", stage)
        modules = [re.match(r"python3 -m src\.(\w+) ", command).group(1) for command in commands(stage)]
        assert modules[-1] == name, "one script per stage, named after the stage"
        code_deps = {dep for dep in stage["deps"] if dep.startswith("src/")}
        assert code_deps == set().union(*(local_imports(module) for module in modules)), name


def test_every_data_path_in_a_command_is_a_declared_dep_or_out() -> None:
    for name, stage in stages().items():
        stage = stage.get("do", stage)
        declared = set(stage["deps"]) | {out for key in ("outs", "metrics") for out in stage.get(key, [])}
        paths = [arg for command in commands(stage) for arg in command.split() if arg.startswith(("data/", "metrics/"))]
        assert set(paths) <= declared, name


def test_a_name_from_params_reaches_the_shell_only_after_src_params_checked_it() -> None:
    for name, stage in stages().items():
        body = stage.get("do", stage)
        for position, command in enumerate(commands(body)):
            if "${" in command:
                assert position > 0 and commands(body)[0] == "python3 -m src.params params.yaml", name


def test_shard_params_are_declared_per_shard_so_dvc_lock_records_them() -> None:
    split = stages()["split"]
    assert split["foreach"] == "${split.shards}"
    assert split["do"]["params"] == ["split.count", "split.allow_gaps", "split.shards.${key}.start",
                                     "split.shards.${key}.stop"]
    assert split["do"]["outs"] == ["data/shards/databricks-dolly-16k-line_ja-${key}.jsonl"]
