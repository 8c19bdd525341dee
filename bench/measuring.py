"""Timed runs: every measured command runs under measure.py, with the probe recording each Python process."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workspace import BENCH_DIR, BenchError, tail

MEASURE = BENCH_DIR / "measure.py"


class CommandTimeout(BenchError):
    """A measured command ran past its timeout and was killed."""


@dataclass(frozen=True)
class ProcessRecord:
    """One Python process of a measured command, as the probe saw it."""

    pid: int
    argv: tuple[str, ...]
    wall: float
    peak_kib: int  # its own peak RSS, or the sampled peak PSS of it with the workers it forked, if larger
    module: str | None = None  # what it ran with `python3 -m` (src.raw), if it was run so
    started: float = 0.0  # epoch seconds

    @property
    def is_dvc(self) -> bool:
        if self.module is not None and (self.module == "dvc" or self.module.startswith("dvc.")):
            return True
        program = Path(self.argv[0]) if self.argv else Path()
        return program.name == "dvc" or program.parent.name == "dvc"

    @property
    def name(self) -> str:
        """The module a stage command ran, by its full dotted name whatever the folder layout: `src.raw` for
        `python3 -m src.raw` (`src.records.index` for one in a subpackage); for a process not run with -m,
        `src.raw` for a program .../src/raw.py."""
        if self.module:
            return self.module.removesuffix(".__main__")
        program = Path(self.argv[0]) if self.argv else Path("?")
        return f"{program.parent.name}.{program.stem}"


@dataclass(frozen=True)
class Measurement:
    wall: float
    peak_kib: int  # the largest process of the whole tree (RUSAGE_CHILDREN of the wrapper)
    processes: tuple[ProcessRecord, ...]
    probe_dir: Path

    @property
    def stages(self) -> list[ProcessRecord]:
        """The processes DVC ran for stages, in the order they started: every recorded Python process but DVC
        itself."""
        return [process for process in self.processes if not process.is_dvc]


@dataclass
class Series:
    """Repetitions of one row of the table."""

    runs: list[Measurement] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(run.wall for run in self.runs)

    @property
    def peak_kib(self) -> int:
        return max(run.peak_kib for run in self.runs)

    @property
    def stage_peak_kib(self) -> int:
        """The largest stage process over all repetitions (0 when no stage ran)."""
        return max((stage.peak_kib for run in self.runs for stage in run.stages), default=0)


def read_probe(probe_dir: Path, group_pss_kib: dict[int, int]) -> tuple[ProcessRecord, ...]:
    """The probe's records, in the order the processes started."""
    records = []
    for path in probe_dir.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        pid = int(path.stem)
        records.append(ProcessRecord(pid, tuple(data["argv"]), data["wall"],
                                     max(data["peak_kib"], group_pss_kib.get(pid, 0)), data.get("module"),
                                     data.get("started", 0.0)))
    return tuple(sorted(records, key=lambda record: (record.started, record.pid)))


def measure(command: Sequence[str], cwd: Path, env: dict[str, str], timeout: float, log_dir: Path,
            label: str) -> Measurement:
    """Run ``command`` once under the wrapper; BenchError (with its stderr tail) when it fails."""
    probe_dir = log_dir / f"{label}.probe"
    if probe_dir.exists():
        shutil.rmtree(probe_dir)
    probe_dir.mkdir(parents=True)
    stdout_file, stderr_file = log_dir / f"{label}.out", log_dir / f"{label}.err"
    os.sync()  # so that the writeback of earlier steps' files does not land in this measurement
    try:
        wrapper = subprocess.run(
            [sys.executable, "-I", "-S", str(MEASURE), str(timeout), str(stdout_file), str(stderr_file), "--",
             *command],
            check=False, cwd=cwd, env={**env, "BENCH_PROBE_DIR": str(probe_dir)}, capture_output=True, text=True,
            timeout=timeout + 120)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(command)}`: the measuring wrapper did not return") from None
    report = wrapper.stdout
    if wrapper.returncode != 0 or not report.strip():
        raise BenchError(f"`{' '.join(command)}`: the measuring wrapper failed (exit {wrapper.returncode}):\n"
                         f"{tail(wrapper.stderr)}")
    result = json.loads(report.strip().splitlines()[-1])
    if result["returncode"] != 0:
        stderr = tail(stderr_file.read_text(encoding="utf-8", errors="replace"))
        if result["returncode"] is None:
            raise CommandTimeout(f"`{' '.join(command)}` (in {cwd}) timed out after {timeout:.0f} s and was killed; "
                                 f"stderr ends:\n{stderr}")
        raise BenchError(f"`{' '.join(command)}` (in {cwd}) exited with {result['returncode']}; stderr ends:\n{stderr}")
    group_pss_kib = {int(pid): kib for pid, kib in result["group_pss_kib"].items()}
    return Measurement(result["wall"], result["peak_kib"], read_probe(probe_dir, group_pss_kib), probe_dir)
