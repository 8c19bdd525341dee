"""Several revisions of the project measured side by side: which code each copy holds, and its cold repro stage by
stage (the stage processes the probe recorded, by module name; nothing here knows which stages there are)."""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tables
from measuring import Measurement, Series
from workspace import describe_code

PROJECT_ROWS = ("split", "cold", "cold_hardlink", "noop")  # what is measured on each revision's project copy


@dataclass(frozen=True)
class Code:
    """Which project code a copy holds: ``commit`` (full id), or the work tree when None; ``spelled`` as given."""

    commit: str | None
    spelled: str | None = None


def labels(codes: Sequence[Code]) -> list[str]:
    """Short, distinct names: `57889df`, `HEAD = c656875`, `work tree`; `(2)` after a code given twice."""
    names = []
    for code in codes:
        if code.commit is None:
            names.append("work tree")
        elif code.spelled is None or code.commit.startswith(code.spelled.lower()):
            names.append(code.commit[:7])
        else:
            names.append(f"{code.spelled} = {code.commit[:7]}")
    seen: dict[str, int] = defaultdict(int)
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def describe(codes: Sequence[Code]) -> str:
    """The project code of a run, for the header line."""
    if len(codes) == 1:
        return describe_code(codes[0].commit)
    return "; ".join(f"{name}: {describe_code(code.commit)}" for name, code in zip(labels(codes), codes, strict=True))


@dataclass
class Revision:
    """One revision's project copy under the work directory, and what was measured on it."""

    code: Code
    label: str
    root: Path
    env: dict[str, str]
    rows: dict[str, Series] = field(default_factory=lambda: {key: Series() for key in PROJECT_ROWS})

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def site_cache(self) -> Path:
        return self.root / "site-cache"

    def split_stage_wall(self) -> float:
        """The median wall time of the split stage's process in the split-alone runs (DVC's hashing and copying
        into the cache excluded)."""
        return statistics.median(sum(stage.wall for stage in run.stages if stage.name == "src.split")
                                 for run in self.rows["split"].runs)


def stage_walls(run: Measurement) -> dict[str, float]:
    """Each stage module's wall time in one DVC run (its processes summed), in the order the stages started."""
    walls: dict[str, float] = {}
    for stage in run.stages:
        walls[stage.name] = walls.get(stage.name, 0.0) + stage.wall
    return walls


@dataclass(frozen=True)
class StageStats:
    """A DVC command's repetitions, stage by stage: medians of wall times, the largest peaks."""

    walls: dict[str, float]  # each stage module's median wall time (over the runs it ran in)
    peaks: dict[str, int]  # each stage module's largest peak (KiB)
    own: float  # median over runs of the stage processes' summed wall time
    dvc: float  # median over runs of the rest: the command's wall time minus its stages'
    dvc_peak_kib: int  # the largest DVC process (its own VmHWM)
    wall: float  # median wall time of the whole command


def stage_stats(series: Series) -> StageStats:
    per_stage: dict[str, list[float]] = defaultdict(list)
    peaks: dict[str, int] = {}
    for run in series.runs:
        for name, wall in stage_walls(run).items():
            per_stage[name].append(wall)
        for stage in run.stages:
            peaks[stage.name] = max(peaks.get(stage.name, 0), stage.peak_kib)
    owns = [sum(stage.wall for stage in run.stages) for run in series.runs]
    return StageStats({name: statistics.median(walls) for name, walls in per_stage.items()}, peaks,
                      statistics.median(owns),
                      statistics.median(run.wall - own for run, own in zip(series.runs, owns, strict=True)),
                      max((process.peak_kib for run in series.runs for process in run.processes if process.is_dvc),
                          default=0),
                      series.wall)


def stage_names(stats: Sequence[StageStats]) -> list[str]:
    """Every stage module seen, in the order they ran (the first revision's order, then any new ones)."""
    names: dict[str, None] = {}
    for one in stats:
        names.update(dict.fromkeys(one.walls))
    return list(names)


def stage_ratios(first: StageStats, last: StageStats) -> dict[str, float]:
    """Each stage's median wall time in the last revision over the first's (stages both ran, with time > 0)."""
    return {name: last.walls[name] / first.walls[name] for name in last.walls
            if name in first.walls and first.walls[name] > 0}


def stage_table(revisions: Sequence[Revision], key: str = "cold") -> list[str]:
    """Markdown: per stage module, each revision's median wall time and largest peak, then the last over the first;
    and rows for the stages' sum, DVC itself and the whole command."""
    stats = [stage_stats(revision.rows[key]) for revision in revisions]
    compare = len(revisions) > 1
    header = ["stage process"]
    for revision in revisions:
        header += [f"{revision.label}: wall", f"{revision.label}: peak"]
    if compare:
        header += [f"{revisions[-1].label} ÷ {revisions[0].label}: wall", "peak"]

    def ratio(last: float, first: float) -> str:
        return f"{last / first:.2f}×" if first > 0 else "n/a"

    body = []
    for name in stage_names(stats):
        row = [f"`{name}`"]
        for one in stats:
            row += ([tables.seconds(one.walls[name]), tables.memory(one.peaks[name])] if name in one.walls
                    else ["—", "—"])
        if compare:
            both = name in stats[0].walls and name in stats[-1].walls
            row += ([ratio(stats[-1].walls[name], stats[0].walls[name]),
                     ratio(stats[-1].peaks[name], stats[0].peaks[name])] if both else ["—", "—"])
        body.append(row)
    for what, value, peak in (("the stages' own time (sum of the stage processes)", "own", None),
                              ("DVC itself (status, hashing, copies into the cache)", "dvc", "dvc_peak_kib"),
                              ("the whole cold `dvc repro`", "wall", None)):
        row = [what]
        for one in stats:
            row += [tables.seconds(getattr(one, value)), tables.memory(getattr(one, peak)) if peak else "—"]
        if compare:
            row += [ratio(getattr(stats[-1], value), getattr(stats[0], value)),
                    ratio(getattr(stats[-1], peak), getattr(stats[0], peak)) if peak else "—"]
        body.append(row)
    return tables.table(header, body)
