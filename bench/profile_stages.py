"""Where the time goes: one cold `dvc repro` at N records with every Python process under cProfile.

    python3 bench/profile_stages.py                      # N = 200,000
    python3 bench/profile_stages.py --records 50000 --top 8

Each stage command runs exactly as dvc.yaml says (DVC runs it); the probe on PYTHONPATH profiles the
main thread of every Python process. Prints, per module (src.raw, src.merge, src.split, ..., and DVC
itself), the functions with the most self time and the project functions with the most cumulative
time, with their share of that module's profiled time. cProfile slows call-heavy code, so shares
are indicative and the wall times are those of the profiled run.
"""
from __future__ import annotations

import argparse
import pstats
import re
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import tables
from measuring import Measurement, ProcessRecord, measure
from workspace import (
    base_env,
    check_workdir,
    describe_code,
    dvc,
    jsonl_source,
    make_cold,
    require_real_dataset,
    resolve_revision,
    run_cli,
    scale_project,
)

SHARDS = 4
Function = tuple[str, int, str]  # pstats' key: file, line, function name
WAIT: Function = ("~", 0, "<built-in method posix.waitpid>")


def label(function: Function, repo: Path) -> str:
    file, line, name = function
    if file == "~":  # a built-in: pstats names it "<method 'write' of ...>"
        return name
    short = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", file.removeprefix(f"{repo}/"))
    return f"{name} ({short}:{line})"


def profile_lines(name: str, processes: list[ProcessRecord], profiles: list[Path], repo: Path,
                  top: int) -> list[str]:
    """Markdown lines: one module's wall time, top self-time functions, top project functions."""
    stats = pstats.Stats(*(str(path) for path in profiles))
    # Time spent waiting for child processes (DVC waiting for its stages) is not this module's work.
    entries = [item for item in stats.stats.items()  # type: ignore[attr-defined]  # not in pstats' stubs
               if item[0] != WAIT]
    total = sum(entry[2] for _, entry in entries)
    by_self = sorted(entries, key=lambda item: item[1][2], reverse=True)[:top]
    ours = [item for item in entries if item[0][0].startswith(f"{repo}/src/")]
    by_cumulative = sorted(ours, key=lambda item: item[1][3], reverse=True)[:top]
    count = f", {len(processes)} processes" if len(processes) > 1 else ""
    lines = [(f"### {name}: {tables.seconds(sum(p.wall for p in processes))} wall under the profiler{count}, "
             f"{tables.seconds(total)} profiled (waiting for child processes excluded)"), "", "Self time:", ""]
    lines += [f"- {entry[2] / total:6.1%}  {entry[2]:7.2f} s  {label(function, repo)}" for function, entry in by_self]
    if by_cumulative:
        lines += ["", "Project functions, cumulative:", ""]
        lines += [f"- {entry[3] / total:6.1%}  {entry[3]:7.2f} s  {label(function, repo)}"
                  for function, entry in by_cumulative]
    return [*lines, ""]


def report(measurement: Measurement, repo: Path, top: int) -> list[str]:
    groups: dict[str, list[ProcessRecord]] = defaultdict(list)
    for process in measurement.processes:
        groups["dvc (the CLI itself: its main thread)" if process.is_dvc else process.name].append(process)
    profiles = {pid.stem: pid for pid in measurement.probe_dir.glob("*.prof")}
    lines = []
    for name, processes in groups.items():
        files = [profiles[str(process.pid)] for process in processes if str(process.pid) in profiles]
        if files:
            lines += profile_lines(name, processes, files, repo, top)
    return lines


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python3 bench/profile_stages.py", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="N, records of the source (200,000)")
    parser.add_argument("--top", type=int, default=10, help="functions listed per module (10)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dolly-ja-bench")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed to each command (3600)")
    parser.add_argument("--rev", help="profile this commit's code instead of the work tree's (e.g. HEAD)")
    args = parser.parse_args(argv)
    require_real_dataset()
    work = check_workdir(args.workdir)
    root = work / "profile"
    env = {**base_env(work), "DVC_SITE_CACHE_DIR": str(root / "site-cache")}
    repo = root / "repo"
    rev = resolve_revision(args.rev) if args.rev else None
    scale_project(repo, env, rev, jsonl_source(work, args.records), args.records, SHARDS, args.timeout)
    make_cold(repo, root / "site-cache", env)
    measurement = measure(dvc("repro"), repo, {**env, "BENCH_PROFILE": "1"}, args.timeout, root / "logs",
                          "profiled-repro")
    print("\n".join([(f"## Profile of a cold `dvc repro` at {args.records:,} records, {describe_code(rev)} "
                     f"({tables.seconds(measurement.wall)} under the profiler)"), "",
                     *report(measurement, repo, args.top)]))


if __name__ == "__main__":
    run_cli(main)
