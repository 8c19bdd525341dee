"""Benchmark of issue 8 (a million records at the speed of the bytes) and issue 7 (cost vs. shard count).

    python3 bench/run.py                                   # N = 1,000,000 records, 3 repetitions
    python3 bench/run.py --records 100000 --repeat 1       # a quick look
    python3 bench/run.py --section scale --rev 57889df --rev HEAD   # two revisions side by side

Prints a Markdown table and writes it to bench/results.md; generated data goes to --workdir only.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import re
import shlex
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import tables
from measuring import CommandTimeout, Measurement, ProcessRecord, Series, measure
from revisions import Code, Revision, describe, labels, stage_ratios, stage_stats, stage_table
from workspace import (
    BENCH_DIR,
    BenchError,
    array_source,
    base_env,
    check_workdir,
    copy_project,
    dvc,
    jsonl_source,
    make_cold,
    outputs,
    require_real_dataset,
    reshard,
    resolve_revision,
    run_checked,
    run_cli,
    scale_project,
)

SHARDS = 4
SHARD_COUNTS = (5, 1024)  # issue 7: 1,024 shards within 2x the time of 5
SHARD_FORMS = (False, True)  # ranges written in params.yaml; --even (split.shards left out)
STAGE_MEMORY_LIMIT_KIB = 256 * 1024
STAGE_SLOWDOWN_LIMIT = 1.25  # no stage of the last revision slower than this times the first revision's
STAGES_VS_DATASETS_LIMIT = 1.0  # the cold repro's stage processes, summed, within this times the `datasets` path
RESULTS = BENCH_DIR / "results.md"
SECTION_ORDER = ("scale", "shards")
LABEL = re.compile(r"[A-Za-z0-9_.]+")
LINKED = {"reflink": "outputs reflinked into the cache", "copy": "outputs copied into the cache",
          "hardlink": "outputs hardlinked into the cache", "symlink": "outputs symlinked into the cache"}
Digests = tuple[list[str], str]  # sha256 of each file, and of their concatenation
TITLE = ("# Benchmark results (issues 8 and 7)\n\nWritten by `python3 bench/run.py` (see bench/README.md); "
         "a run of one `--section` replaces that section (of its `--label`) only.\n\n")


@dataclass(frozen=True)
class Settings:
    records: int
    repeat: int
    section: str
    work: Path
    reference_max: int
    timeout: float
    codes: tuple[Code, ...]  # the revisions measured, in the order given; the last is the one the checks are for
    results: Path
    label: str | None = None

    def section_name(self, name: str) -> str:
        """The results file's section a run writes: `scale`, or `scale-xfs` with --label xfs."""
        return name if self.label is None else f"{name}-{self.label}"


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer (1,000,000 and 1_000_000 accepted) of at least ``minimum``."""
    def parse(text: str) -> int:
        value = int(text.replace(",", "").replace("_", ""))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value
    return parse


def section_label(text: str) -> str:
    """An argparse type: a section label, letters, digits, `_` and `.` (it becomes part of `scale-LABEL`)."""
    if not LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError("letters, digits, '_' and '.' only (e.g. xfs)")
    return text


def parse_args(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="python3 bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=at_least(SHARDS), default=1_000_000,
                        help="N, records of the source (1,000,000)")
    parser.add_argument("--repeat", type=at_least(1), default=3, metavar="R",
                        help="repetitions; medians are reported (3)")
    parser.add_argument("--section", choices=("scale", "shards", "all"), default="all",
                        help="scale: issue 8 at N records; shards: issue 7, 5 vs 1,024 shards (all)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dolly-ja-bench",
                        help="where sources, project copies and outputs go (outside the repository)")
    parser.add_argument("--reference-max", type=at_least(SHARDS), default=1_000_000,
                        help="largest N for the reference conversion; above it, N is halved (1,000,000)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed to each command (3600)")
    parser.add_argument("--rev", action="append", default=[],
                        help="benchmark this commit's code instead of the work tree's (e.g. HEAD); give it several "
                             "times to measure the revisions side by side in the scale section, interleaved, the "
                             "last one compared with the first and checked against the targets (the shards "
                             "section measures the last)")
    parser.add_argument("--label", type=section_label,
                        help="write the sections as `scale-LABEL` / `shards-LABEL` (e.g. xfs), beside the unlabelled "
                             "ones instead of replacing them")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="the Markdown file the tables go to (bench/results.md)")
    args = parser.parse_args(argv)
    codes = tuple(Code(resolve_revision(rev), rev) for rev in args.rev) or (Code(None),)
    return Settings(args.records, args.repeat, args.section, check_workdir(args.workdir), args.reference_max,
                    args.timeout, codes, args.results, args.label)


def digests(paths: Sequence[Path]) -> Digests:
    """sha256 of each file and of their concatenation, in one pass."""
    whole, each = hashlib.sha256(), []
    for path in paths:
        one = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                one.update(chunk)
                whole.update(chunk)
        each.append(one.hexdigest())
    return each, whole.hexdigest()


def same_bytes(ours: Digests, theirs: Digests) -> tuple[bool, str]:
    """Whether two shard sets hold the same bytes, concatenated and shard by shard; and a summary."""
    if len(ours[0]) != len(theirs[0]):
        return False, f"{len(ours[0])} shard files against {len(theirs[0])}"
    equal = [a == b for a, b in zip(ours[0], theirs[0], strict=False)]
    detail = (f"concatenation {'identical' if ours[1] == theirs[1] else 'differs'}; per shard: "
              + ", ".join(f"{number} {'identical' if same else 'differs'}" for number, same in enumerate(equal, 1)))
    return ours[1] == theirs[1] and all(equal), detail


def breakdown(run: Measurement) -> str:
    """Each stage module's wall time and peak memory in a DVC run, then the rest: DVC's own time."""
    per_module: dict[str, list[ProcessRecord]] = defaultdict(list)
    for stage in run.stages:
        per_module[stage.name].append(stage)
    parts = []
    for name, stages in per_module.items():
        count = f", {len(stages)} processes" if len(stages) > 1 else ""
        parts.append(f"`{name}` {tables.seconds(sum(stage.wall for stage in stages))} "
                     f"({tables.memory(max(stage.peak_kib for stage in stages))}{count})")
    rest = run.wall - sum(stage.wall for stage in run.stages)
    return f"{', '.join(parts)}; DVC itself (status, hashing, copies into the cache): {tables.seconds(rest)}"


def progress(label: str, measurement: Measurement) -> None:
    print(f"  {label}: {tables.seconds(measurement.wall)}, peak {tables.memory(measurement.peak_kib)}", flush=True)


def largest_stage(series: Sequence[Series]) -> tuple[int, str]:
    """The largest stage peak over the runs of ``series`` (KiB), and that stage's module ("" when none ran)."""
    peaks = [(stage.peak_kib, stage.name) for one in series for run in one.runs for stage in run.stages]
    return max(peaks, default=(0, ""))


class ScaleBench:
    """Issue 8: the floor, the project's split and cold repro, `datasets` and the reference, on one N; the project
    rows for each revision, interleaved."""

    name = "scale"

    def __init__(self, settings: Settings) -> None:
        require_real_dataset()
        self.settings = settings
        self.root = settings.work / "scale"
        self.logs = self.root / "logs"
        self.env = {**base_env(settings.work), "DVC_SITE_CACHE_DIR": str(self.root / "site-cache")}
        self.source = jsonl_source(settings.work, settings.records)
        self.revisions = [self.revision(number, code, label) for number, (code, label)
                          in enumerate(zip(settings.codes, labels(settings.codes), strict=True), 1)]
        self.last = self.revisions[-1]
        self.compare = len(self.revisions) > 1
        self.reference_records = settings.records
        while self.reference_records > settings.reference_max:
            self.reference_records //= 2
        self.reference_failures: list[str] = []
        self.rows = {key: Series() for key in ("floor", "datasets", "reference")}
        self.link_check = ""
        self.title = f"Scale (issue 8): N = {settings.records:,} records, {SHARDS} shards"

    def revision(self, number: int, code: Code, label: str) -> Revision:
        """The ``number``-th revision's place: scale/revs/NUMBER-COMMIT/ holds its project copy and DVC site cache."""
        root = self.root / "revs" / f"{number}-{(code.commit or 'worktree')[:7]}"
        return Revision(code, label, root, {**self.env, "DVC_SITE_CACHE_DIR": str(root / "site-cache")})

    @property
    def repos(self) -> list[tuple[str, Path]]:
        return [(revision.label, revision.repo) for revision in self.revisions]

    def setup(self) -> None:
        # Copies of revisions an earlier run measured, and the single copy of the harness before --rev could repeat.
        for old in ("revs", "repo", "site-cache"):
            shutil.rmtree(self.root / old, ignore_errors=True)
        for revision in self.revisions:
            print(f"scale: project copy of {revision.label} in {revision.repo}", flush=True)
            scale_project(revision.repo, revision.env, revision.code.commit, self.source, self.settings.records,
                          SHARDS, self.settings.timeout)

    def time(self, series: Series, key: str, command: Sequence[str], rep: int, cwd: Path,
             env: dict[str, str]) -> None:
        measurement = measure(command, cwd, env, self.settings.timeout, self.logs, f"{key}-{rep}")
        series.runs.append(measurement)
        progress(f"[{rep}/{self.settings.repeat}] {key}", measurement)

    def time_project(self, revision: Revision, key: str, command: Sequence[str], rep: int) -> None:
        number = self.revisions.index(revision) + 1
        self.time(revision.rows[key], f"{key}-rev{number}" if self.compare else key, command, rep, revision.repo,
                  revision.env)

    def time_here(self, key: str, command: Sequence[str], rep: int, env: dict[str, str] | None = None) -> None:
        self.time(self.rows[key], key, command, rep, self.root, env or self.env)

    def merged_file(self, repo: Path) -> Path:
        merged = outputs(repo / "data" / "merged", "*.jsonl")
        if len(merged) != 1:
            raise BenchError(f"expected one merged file in {repo / 'data' / 'merged'}, found {len(merged)}")
        return merged[0]

    def floor_command(self) -> list[str]:
        scratch = self.root / "floor"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        lines = math.ceil(self.settings.records / SHARDS)
        return ["split", "-l", str(lines), str(self.merged_file(self.last.repo)), str(scratch / "part-")]

    def datasets_env(self) -> dict[str, str]:
        """Its own, emptied Hugging Face cache under the work directory, offline."""
        cache = self.root / "hf-cache"
        shutil.rmtree(cache, ignore_errors=True)
        return {**self.env, "HF_DATASETS_CACHE": str(cache / "datasets"), "HF_HOME": str(cache / "home"),
                "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}

    def time_datasets(self, rep: int) -> None:
        out = self.root / "datasets-out"
        shutil.rmtree(out, ignore_errors=True)
        self.time_here("datasets", [sys.executable, str(BENCH_DIR / "hf_path.py"), str(self.source), str(out),
                                    str(SHARDS)], rep, env=self.datasets_env())

    def time_reference(self, rep: int) -> None:
        """At the current size; on failure (MemoryError, killed) halve the size and start its series anew."""
        out = self.root / "reference-out"
        while self.reference_records >= SHARDS:
            shutil.rmtree(out, ignore_errors=True)
            array = array_source(self.settings.work, self.reference_records)
            command = [sys.executable, str(BENCH_DIR / "reference.py"), str(array), str(out), str(SHARDS)]
            try:
                self.time_here("reference", command, rep)
                return
            except BenchError as error:
                print(f"  the reference conversion failed at {self.reference_records:,} records; halving:\n{error}",
                      flush=True)
                self.reference_failures.append(f"{self.reference_records:,}")
                self.rows["reference"].runs.clear()
                self.reference_records //= 2
        raise BenchError("the reference conversion failed at every size")

    def run_revision(self, revision: Revision, rep: int) -> None:
        """The project rows on one revision's copy: cold repro, no-op, split alone, cold repro with hardlinks."""
        timeout = self.settings.timeout
        make_cold(revision.repo, revision.site_cache, revision.env)
        self.time_project(revision, "cold", dvc("repro"), rep)
        if revision is self.last:
            self.link_check = self.check_links()
        self.time_project(revision, "noop", dvc("repro"), rep)
        self.time_project(revision, "split", dvc("repro", "-f", "-s", "split"), rep)
        make_cold(revision.repo, revision.site_cache, revision.env)  # (which also drops this local config again)
        run_checked(dvc("config", "--local", "cache.type", "hardlink"), revision.repo, revision.env, timeout)
        self.time_project(revision, "cold_hardlink", dvc("repro"), rep)
        (revision.repo / ".dvc" / "config.local").unlink()  # back to the project's cache.type

    def check_links(self) -> str:
        """After a cold repro with the project's cache.type: whether an output shares its extents (reflinked)."""
        shared = tables.shared_extents(self.merged_file(self.last.repo))
        if shared is None:
            return ""
        return ("; checked after a cold repro: the merged file's extents are shared (`filefrag -v`), so it was "
                "reflinked" if shared else
                "; checked after a cold repro: the merged file shares no extents (`filefrag -v`), so it was copied")

    def run(self) -> None:
        self.setup()
        for rep in range(1, self.settings.repeat + 1):
            for revision in self.revisions:
                if self.compare:
                    print(f" {revision.label}:", flush=True)
                self.run_revision(revision, rep)
            self.time_here("floor", self.floor_command(), rep)
            self.time_datasets(rep)
            self.time_reference(rep)

    def bytes_check(self) -> tuple[bool | None, list[str]]:
        """PASS/FAIL of the last revision's shards against the reference conversion (and how `datasets`
        compares)."""
        of = f" ({self.last.label})" if self.compare else ""
        if self.reference_records != self.settings.records:
            return None, [(f"Shard bytes: NOT COMPARED: the reference conversion ran at {self.reference_records:,} "
                           f"records, the project at {self.settings.records:,}.")]
        reference = digests(outputs(self.root / "reference-out", "*.jsonl"))
        ok, detail = same_bytes(digests(outputs(self.last.repo / "data" / "shards", "**/*.jsonl")), reference)
        _, datasets_detail = same_bytes(digests(outputs(self.root / "datasets-out", "*.jsonl")), reference)
        return ok, [(f"Shard bytes, this project{of} vs the reference conversion at {self.settings.records:,} "
                     f"records: **{'PASS' if ok else 'FAIL'}** ({detail})."),
                    f"For comparison, the `datasets` path vs the reference: {datasets_detail}."]

    def cold_breakdown(self) -> list[str]:
        lines = []
        for revision in self.revisions:
            of = f" of {revision.label}" if self.compare else ""
            for key, what in (("cold", "cold `dvc repro`"), ("cold_hardlink", "cold `dvc repro` with hardlinks")):
                run = revision.rows[key].runs[-1]
                lines.append(f"Where the {what}{of} spent its {tables.seconds(run.wall)} (last repetition): "
                             f"{breakdown(run)}.")
        return lines

    def reference_label(self) -> str:
        label = ("reference conversion: `json.load` of the array, per-shard lists, pandas DataFrame, "
                 "`json.dumps` per row")
        if self.reference_records == self.settings.records:
            return label
        why = (f"it failed at {', '.join(self.reference_failures)}; halved down to the largest N it survived"
               if self.reference_failures else
               f"N halved down to --reference-max {self.settings.reference_max:,} or less")
        return f"{label}, **at {self.reference_records:,} records** ({why})"

    def project_rows(self, revision: Revision, floor: float) -> list[list[str]]:
        who = f"{revision.label}:" if self.compare else "this project:"
        names = {
            "split": f"{who} the split alone (`dvc repro -f -s split`)",
            "cold": f"{who} full cold `dvc repro` (no outputs, cache, run cache or DVC state)",
            "cold_hardlink": (f"{who + ' ' if self.compare else ''}the same with `cache.type hardlink` (outputs "
                              "linked into the cache, not copied)"),
            "noop": f"{who} no-op `dvc repro` (everything up to date)",
        }
        body = []
        for key, series in revision.rows.items():
            stages = series.stage_peak_kib
            peak = tables.memory(series.peak_kib) + (f" (stages: {tables.memory(stages)})" if stages else
                                                     " (no stage ran)")
            body.append([names[key], tables.seconds(series.wall), peak, tables.ratio(series.wall, floor)])
        split_stage = revision.split_stage_wall()
        body.insert(1, [f"{who} the split stage's own process (`python3 -m src.split`) in the row above",
                        tables.seconds(split_stage), tables.memory(revision.rows["split"].stage_peak_kib),
                        tables.ratio(split_stage, floor)])
        return body

    def lines(self) -> list[str]:
        rows, floor = self.rows, self.rows["floor"].wall
        of_last = f" of {self.last.label}" if self.compare else ""
        body = [[f"floor: coreutils `split -l {math.ceil(self.settings.records / SHARDS)}` on the merged file{of_last}",
                 tables.seconds(floor), tables.memory(rows["floor"].peak_kib), tables.ratio(floor, floor)]]
        for revision in self.revisions:
            body += self.project_rows(revision, floor)
        ratio = tables.ratio(rows["reference"].wall, floor)
        if self.reference_records != self.settings.records:
            ratio += f" (at {self.reference_records:,} records)"
        body += [[f"Hugging Face `datasets` {tables.package_version('datasets')}: `Dataset.from_json` → "
                  f"`shard({SHARDS}, k, contiguous=True)` → `to_json` (empty HF cache)",
                  tables.seconds(rows["datasets"].wall), tables.memory(rows["datasets"].peak_kib),
                  tables.ratio(rows["datasets"].wall, floor)],
                 [self.reference_label(), tables.seconds(rows["reference"].wall),
                  tables.memory(rows["reference"].peak_kib), ratio]]
        ok, check = self.bytes_check()
        order = (["Revisions, in the order each repetition measures them (interleaved, on the same source file; the "
                  "last is compared with the first and checked against the targets): "
                  + ", then ".join(f"**{revision.label}**" for revision in self.revisions)
                  + "; then the floor, `datasets` and the reference conversion.", ""] if self.compare else [])
        return [
            (f"Source: {self.source} ({self.source.stat().st_size / 1e6:,.0f} MB of JSON Lines, the real "
             "15,015 records repeated with unique `index`)."),
            "",
            *order,
            *tables.table(["what", "wall (median)", "peak RSS", "× floor"], body),
            "",
            *check,
            "",
            "### The cold `dvc repro`, stage by stage",
            "",
            ("Each stage process of the cold `dvc repro` (the probe's records, by module): median wall time over the "
             "repetitions and largest peak; DVC itself is the command's wall time minus its stages' (its peak: the "
             "`dvc` process's own)."),
            "",
            *stage_table(self.revisions),
            "",
            *self.cold_breakdown(),
            "",
            "### Targets of issue 8",
            "",
            *tables.table(["target", "measured", "met?"], self.targets(ok)),
        ]

    def link_note(self) -> str:
        """What the project's cache.type did with outputs here, for the cold-repro targets."""
        kind = tables.cache_type(self.last.repo, self.last.env) or tables.DVC_DEFAULT_CACHE_TYPE
        used = tables.link_used(kind, tables.reflinks_supported(self.settings.work))
        return f"cache.type {kind}, the project's: {LINKED.get(used, used)} here"

    def targets(self, bytes_ok: bool | None) -> list[list[str]]:
        rows, last = self.rows, self.last
        who = f"{last.label}: " if self.compare else ""
        split_ratio = last.split_stage_wall() / rows["floor"].wall
        dvc_split_ratio = last.rows["split"].wall / rows["floor"].wall
        datasets = rows["datasets"].wall
        cold_ratio = last.rows["cold"].wall / datasets
        hardlink_ratio = last.rows["cold_hardlink"].wall / datasets
        noop_stages = sum(len(run.stages) for run in last.rows["noop"].runs)
        targets = [
            [f"{who}the split writes {self.settings.records:,} records within 4× of `split -l`",
             f"{split_ratio:.1f}× (the stage process; {dvc_split_ratio:.1f}× with DVC's hashing and caching of the "
             "shards)", tables.verdict(split_ratio <= 4)],
            *self.stage_targets(datasets),
            [f"{who}full cold `dvc repro` within 1.5× of the `datasets` path",
             f"{cold_ratio:.2f}× ({self.link_note()})", tables.verdict(cold_ratio <= 1.5)],
            [f"{who}the same, outputs hardlinked into the cache", f"{hardlink_ratio:.2f}× (cache.type hardlink)",
             tables.verdict(hardlink_ratio <= 1.5)],
            *self.memory_targets(),
            ["peak memory flat in N (4N within 1.2× of N)",
             "not measured here (one N per run): tests/e2e/test_memory.py, at 100,000 and 400,000 records", "—"],
            [f"{who}no-op `dvc repro` does no work beyond DVC's status check",
             f"{noop_stages} stage processes, {tables.seconds(last.rows['noop'].wall)}",
             tables.verdict(noop_stages == 0)],
            [f"{who}shard bytes identical to the reference conversion",
             {True: "PASS", False: "FAIL", None: "not compared (different N)"}[bytes_ok],
             "—" if bytes_ok is None else tables.verdict(bytes_ok)],
        ]
        if self.compare:
            targets.insert(0, self.slowdown_target())
        return targets

    def stage_targets(self, datasets: float) -> list[list[str]]:
        """Per revision: the cold repro's stage processes, summed, within 1.0× of `datasets`; DVC's share beside."""
        targets = []
        for revision in self.revisions:
            stats = stage_stats(revision.rows["cold"])
            who = f"{revision.label}: " if self.compare else ""
            ratio = stats.own / datasets
            targets.append([
                (f"{who}the stages' own time in the cold `dvc repro` (sum of the stage processes) within "
                 f"{STAGES_VS_DATASETS_LIMIT:.1f}× of the `datasets` path on the same file"),
                (f"{ratio:.2f}× ({tables.seconds(stats.own)} against {tables.seconds(datasets)}); beside it, DVC's "
                 f"own share: {tables.seconds(stats.dvc)} of the {tables.seconds(stats.wall)} repro "
                 f"({stats.dvc / stats.wall:.0%}: status, hashing, copies into the cache)"),
                tables.verdict(ratio <= STAGES_VS_DATASETS_LIMIT)])
        return targets

    def memory_targets(self) -> list[list[str]]:
        """Per revision: the largest stage peak of all its DVC commands within the limit."""
        targets = []
        for revision in self.revisions:
            who = f"{revision.label}: " if self.compare else ""
            peak, name = largest_stage(list(revision.rows.values()))
            targets.append([f"{who}peak memory of every stage ≤ {tables.memory(STAGE_MEMORY_LIMIT_KIB)}",
                            tables.memory(peak) + (f" (`{name}`)" if name else ""),
                            tables.verdict(peak <= STAGE_MEMORY_LIMIT_KIB)])
        return targets

    def slowdown_target(self) -> list[str]:
        """No stage of the last revision slower than 1.25× the first's (median wall times in the cold repro)."""
        first, last = (stage_stats(revision.rows["cold"]) for revision in (self.revisions[0], self.last))
        ratios = stage_ratios(first, last)
        new = [name for name in last.walls if name not in first.walls]
        measured = ", ".join(f"`{name}` {ratio:.2f}×" for name, ratio in ratios.items())
        if ratios:
            worst = max(ratios, key=ratios.__getitem__)
            measured += f" (largest: `{worst}`)"
        if new:
            measured += f"; not in {self.revisions[0].label}, so not compared: " + ", ".join(f"`{n}`" for n in new)
        return [(f"no stage of {self.last.label} slower than {STAGE_SLOWDOWN_LIMIT:.2f}× {self.revisions[0].label}'s"
                 " (cold `dvc repro`, median wall time of each stage process)"),
                measured or "no stage in common", tables.verdict(bool(ratios) and
                                                                 max(ratios.values()) <= STAGE_SLOWDOWN_LIMIT)]


class ShardsBench:
    """Issue 7: `dvc repro` after `reshard 5` vs after `reshard 1024` on the default sample, raw and merge done;
    with the ranges written out in params.yaml, and with `--even` (split.shards left out)."""

    name = "shards"
    title = "Shard count (issue 7): the default built-in sample, raw and merge done"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.work / "shards"
        self.base = self.root / "base"
        self.repo = self.root / "run"
        self.logs = self.root / "logs"
        self.env = {**base_env(settings.work), "DVC_SITE_CACHE_DIR": str(self.root / "site-cache")}
        self.rows = {(even, count): Series() for even in SHARD_FORMS for count in SHARD_COUNTS}
        self.timed_out: set[tuple[bool, int]] = set()
        self.repos = [(labels(settings.codes)[-1], self.repo)]
        self.link_check = ""

    def setup(self) -> None:
        """The default project, reproduced once: the state every measurement starts from."""
        print(f"shards: project copy in {self.base}", flush=True)
        copy_project(self.base, self.env, self.settings.codes[-1].commit)
        run_checked(dvc("repro"), self.base, self.env, self.settings.timeout)

    def time_count(self, even: bool, count: int, rep: int) -> None:
        """One `dvc repro` after `reshard COUNT [--even]`, on a fresh copy of the reproduced default project."""
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.copytree(self.base, self.repo, symlinks=True)
        run_checked(dvc("status"), self.repo, self.env, self.settings.timeout)  # DVC's hash state for the copy
        reshard(self.repo, self.env, count, None, self.settings.timeout, even=even)
        try:
            measurement = measure(dvc("repro"), self.repo, self.env, self.settings.timeout, self.logs,
                                  f"shards-{'even-' if even else ''}{count}-{rep}")
        except CommandTimeout as error:
            print(f"  {error}", flush=True)
            self.timed_out.add((even, count))
            return
        self.rows[(even, count)].runs.append(measurement)
        progress(f"[{rep}/{self.settings.repeat}] {reshard_command(even, count)} && dvc repro", measurement)

    def run(self) -> None:
        self.setup()
        for rep in range(1, self.settings.repeat + 1):
            for key in self.rows:
                if key not in self.timed_out:
                    self.time_count(*key, rep)

    def wall(self, key: tuple[bool, int]) -> tuple[float, str]:
        """The median wall time, or the timeout with "> " when the command was killed at it."""
        if key in self.timed_out:
            return self.settings.timeout, "> "
        return self.rows[key].wall, ""

    def lines(self) -> list[str]:
        body, target, notes = [], [], []
        for even in SHARD_FORMS:
            (few, _), (many, more) = (self.wall((even, count)) for count in SHARD_COUNTS)
            for count in SHARD_COUNTS:
                series = self.rows[(even, count)]
                wall, prefix = self.wall((even, count))
                peak = (f"{tables.memory(series.peak_kib)} (stages: {tables.memory(series.stage_peak_kib)})"
                        if series.runs else "—")
                body.append([f"`{reshard_command(even, count)}`, then `dvc repro` (timed alone)",
                             prefix + tables.seconds(wall) + (" (killed: --timeout)" if prefix else ""), peak,
                             prefix + tables.ratio(wall, few)])
                if series.runs:
                    notes.append(f"Where the last `dvc repro` after `{reshard_command(even, count)}` spent its "
                                 f"{tables.seconds(series.runs[-1].wall)}: {breakdown(series.runs[-1])}.")
            target.append([f"{SHARD_COUNTS[1]:,} shards within 2× the time of {SHARD_COUNTS[0]} "
                           f"({'even: split.shards left out' if even else 'ranges written in params.yaml'})",
                           f"{more}{many / few:.1f}×", tables.verdict(not more and many <= 2 * few)])
        return [
            *tables.table(["what", "wall (median)", "peak RSS", f"× {SHARD_COUNTS[0]} shards (same form)"], body),
            "",
            *(line for note in notes for line in (note, "")),
            "### Target of issue 7",
            "",
            *tables.table(["target", "measured", "met?"], target),
        ]


def reshard_command(even: bool, count: int) -> str:
    return f"python3 -m src.reshard {count}" + (" --even" if even else "")


def wrapper_floor_kib(settings: Settings) -> int:
    """The peak RSS the wrapper reports for `true`: the part of every peak that is the wrapper's own."""
    return measure(["true"], settings.work, base_env(settings.work), 60, settings.work / "logs", "true").peak_kib


def run_lines(settings: Settings, argv: Sequence[str], bench: ScaleBench | ShardsBench, floor_kib: int) -> list[str]:
    """What produced a section: the command, when, which code, on which machine and filesystem, and how memory is
    read."""
    command = " ".join(["python3", "bench/run.py", *(shlex.quote(arg) for arg in argv)])
    codes = settings.codes if isinstance(bench, ScaleBench) else settings.codes[-1:]
    return [
        (f"Command: `{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
         f"Repetitions: {settings.repeat} (wall: median; peak RSS: the largest). "
         f"Project code: {describe(codes)}."),
        "",
        *tables.machine(settings.work, bench.repos, bench.env, bench.link_check),
        "",
        (f"Peak RSS is ru_maxrss of the command's process tree; Linux carries a parent's peak into the "
         f"children it starts, so every figure includes the measuring wrapper's own {tables.memory(floor_kib)} "
         "(what it reports for `true`). \"stages\" is the largest stage: its process's own peak (VmHWM) or, for "
         "a stage that forks workers, the peak of their proportional set sizes summed with its own (sampled every "
         "0.1 s), whichever is larger."),
        "",
    ]


def read_sections(results: Path) -> dict[str, str]:
    """The sections already in the results file, so that a run of one section keeps the others."""
    if not results.is_file():
        return {}
    parts = re.split(r"^<!-- section: ([\w.-]+) -->\n", results.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def section_key(name: str) -> tuple[int, str]:
    """Sections in order: scale, its labelled variants, shards, its labelled variants (then any other)."""
    base, _, label = name.partition("-")
    return (SECTION_ORDER.index(base) if base in SECTION_ORDER else len(SECTION_ORDER)), label


def main(argv: Sequence[str]) -> None:
    settings = parse_args(argv)
    benches: list[ScaleBench | ShardsBench] = []
    if settings.section in ("scale", "all"):
        benches.append(ScaleBench(settings))
    if settings.section in ("shards", "all"):
        benches.append(ShardsBench(settings))
    for bench in benches:
        bench.run()
    floor_kib = wrapper_floor_kib(settings)
    sections = read_sections(settings.results)
    for bench in benches:
        title = bench.title + (f" ({settings.label})" if settings.label else "")
        lines = [f"## {title}", "", *run_lines(settings, argv, bench, floor_kib), *bench.lines(), "", ""]
        sections[settings.section_name(bench.name)] = "\n".join(lines)
    text = TITLE + "".join(f"<!-- section: {name} -->\n{sections[name]}" for name in sorted(sections, key=section_key))
    print(text)
    settings.results.write_text(text, encoding="utf-8")
    print(f"written to {settings.results}")


if __name__ == "__main__":
    run_cli(main)
