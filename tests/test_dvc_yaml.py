"""dvc.yaml itself: every stage depends on exactly the src modules it runs (with the files beside them named after
them, which they read: src/plots_page.css), and every path it reads or writes."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def module_files(module: str) -> list[str]:
    """The files Python runs to import ``module`` (dotted, under src): its packages' __init__.py, then itself."""
    parts = module.split(".")
    files = [f"{'/'.join(parts[:depth])}/__init__.py" for depth in range(1, len(parts))]
    return [*files, f"{'/'.join(parts)}/__init__.py" if (ROOT / Path(*parts)).is_dir() else f"{'/'.join(parts)}.py"]


def local_imports(module: str) -> set[str]:
    """The src files ``module`` (dotted: src.raw) imports, transitively, itself and its packages included."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = ROOT / module_files(name)[-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith("src."):
                continue
            imported = str(node.module)
            pending.append(imported)
            # from src.package import module
            pending += [f"{imported}.{alias.name}" for alias in node.names
                        if (ROOT / Path(*imported.split("."), f"{alias.name}.py")).is_file()]
    return {file for name in seen for file in module_files(name)}


def files_beside(module_file: str) -> set[str]:
    """The files a module reads beside it, named after it: src/plots_page.css and .js for src/plots_page.py."""
    path = ROOT / module_file
    return {str(other.relative_to(ROOT)) for other in path.parent.glob(f"{path.stem}.*") if other != path}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def commands(stage: dict) -> list[str]:
    return stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]


def test_each_stage_depends_on_exactly_the_code_it_runs() -> None:
    for name, stage in stages().items():
        modules = [re.findall(r"python3 -m (src\.\w+) ", command)[0] for command in commands(stage)]
        assert modules[-1] == f"src.{name}", "one script per stage, named after the stage, on top of src/"
        code_deps = {dep for dep in stage["deps"] if dep.startswith("src/")}
        code = set().union(*(local_imports(module) for module in modules))
        assert code_deps == code.union(*map(files_beside, code)), name


def out_paths(stage: dict) -> set[str]:
    """Paths of a stage's outs, metrics and plots (an entry is a path, or {path: options})."""
    return {next(iter(out)) if isinstance(out, dict) else out
            for key in ("outs", "metrics", "plots") for out in stage.get(key, [])}


def test_every_data_path_in_a_command_is_a_declared_dep_or_out() -> None:
    for name, stage in stages().items():
        declared = set(stage["deps"]) | out_paths(stage)
        paths = [arg for command in commands(stage) for arg in command.split()
                 if arg.startswith(("data/", "metrics/", "plots/"))]
        # A path pattern such as data/shards/NAME-{shard}.jsonl, or the card in it, lies in a declared directory.
        assert all(p in declared or str(Path(p).parent) in declared for p in paths), name


def test_the_split_is_one_stage_whatever_the_shard_count() -> None:
    split = stages()["split"]
    assert "foreach" not in split and split["params"] == ["split", "near_duplicates", "contamination", "card"]
    assert split["outs"][0] == "data/shards"
    shard_path = next(arg for arg in split["cmd"].split() if arg.startswith("data/shards/"))
    assert shard_path == "data/shards/databricks-dolly-16k-line_ja-{shard}.jsonl"


def test_metrics_and_plot_tables_are_kept_in_git_so_experiments_compare_without_a_pull() -> None:
    # Stage metrics and plots (not plain outs, which would stop DVC from saving the stage to its run cache): DVC's
    # run cache keeps them although git does, so going back to a sharding tried before restores it without running
    # the split.
    entries = {next(iter(out)): out[next(iter(out))] for stage in stages().values() for key in ("metrics", "plots")
               for out in stage.get(key, []) if isinstance(out, dict)}
    assert set(entries) == {"metrics/merge.json", "metrics/split.json", "plots/shards.json", "plots/categories.json",
                            "plots/lengths.json", "plots/leakage.json", "plots/contamination.json"}
    assert not [out for stage in stages().values() for out in stage.get("outs", []) if isinstance(out, dict)]
    assert all(options["cache"] is False for options in entries.values())
    assert "plots" not in yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))  # each table drawn once
