"""Compare two shardings record by record, by content: which records stayed in their shard, which moved and from
which shard to which, which were added or removed.

Usage: python3 -m src.shard_diff OLD [NEW] [--json] [--examples N]
OLD and NEW are git revisions or experiment names; NEW defaults to the workspace. Only the shard files of both
sides are read: from the workspace, or through DVC at a revision (from the cache, else pulled from the remote).
A record is its shard line; records that occur several times are matched count for count.
"""
from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO

import yaml
from scmrepo.exceptions import RevError
from scmrepo.git import Git

from src.core.errors import ArgumentParser, DatasetError, run_cli
from src.core.spill import scratch_database
from src.split import SHARD_PLACEHOLDER, shard_path_parts

WORKSPACE = "workspace"


def shard_path_pattern(dvc_yaml: Path) -> str:
    """The split's SHARD_PATH argument in dvc.yaml (data/shards/NAME-{shard}.jsonl)."""
    try:
        command = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]["split"]["cmd"]
        return next(arg for arg in str(command).split() if SHARD_PLACEHOLDER in arg)
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        raise DatasetError(f"{dvc_yaml}: cannot find the split stage's shard path") from None


def resolve_revision(repo: Path, name: str) -> str:
    """A git revision for ``name``: itself, or the ref of the experiment of that name (git read through scmrepo,
    which DVC uses: no git process is started)."""
    git = Git(str(repo))
    try:
        return git.resolve_rev(name)
    except RevError:
        pass
    matching = [ref for ref in git.iter_refs(base="refs/exps/") if ref.rsplit("/", 1)[-1] == name]
    if len(matching) != 1:
        raise DatasetError(f"{name!r} is neither a git revision nor an experiment here; see `dvc exp list` and "
                           "`git log`")
    return matching[0]


class Side:
    """The shard files of one side: the workspace, or a revision through DVC."""

    def __init__(self, repo: Path, revision: str | None, pattern: str) -> None:
        self.label = revision or WORKSPACE
        directory, name = shard_path_parts(pattern)
        self.directory = directory.as_posix()
        self.prefix, self.suffix = name.split(SHARD_PLACEHOLDER)
        self._repo = repo
        self._fs = None
        if revision is not None:
            from dvc.api import DVCFileSystem  # imported here: it is slow, and the workspace does not need it

            self._fs = DVCFileSystem(str(repo), rev=resolve_revision(repo, revision))

    def shards(self) -> dict[str, str]:
        """{shard name: path} of the shard files on this side, in shard order."""
        if self._fs is None:
            directory = self._repo / self.directory
            names = [path.name for path in directory.iterdir()] if directory.is_dir() else []
        else:
            names = [Path(path).name for path in self._fs.ls(self.directory, detail=False)]
        found = {name[len(self.prefix):len(name) - len(self.suffix)]: f"{self.directory}/{name}" for name in names
                 if name.startswith(self.prefix) and name.endswith(self.suffix)}
        if not found:
            raise DatasetError(f"{self.label}: no shard files in {self.directory}/; run `dvc repro` or `dvc pull`")
        return dict(sorted(found.items(), key=lambda item: _shard_order(item[0])))

    def open(self, path: str) -> IO[bytes]:
        if self._fs is None:
            return (self._repo / path).open("rb")
        return self._fs.open(path, "rb")


def _shard_order(name: str) -> tuple[int, str]:
    number = name.split("_", 1)[0]
    return (int(number), name) if number.isdigit() else (0, name)


@dataclass
class ShardingDiff:
    old: str
    new: str
    records: dict[str, int] = field(default_factory=dict)  # per side
    stayed: int = 0
    moved: Counter[tuple[str, str]] = field(default_factory=Counter)
    added: int = 0
    removed: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"old": self.old, "new": self.new, "records": self.records, "stayed": self.stayed,
                "moved": sum(self.moved.values()),
                "moves": [{"from": a, "to": b, "records": n} for (a, b), n in self.moves()],
                "added": self.added, "removed": self.removed, "examples": self.examples}

    def report(self) -> str:
        lines = [f"{self.old} -> {self.new}: {self.records[self.old]:,} -> {self.records[self.new]:,} records",
                 f"  stayed in the same shard: {self.stayed:,}",
                 f"  moved to another shard:   {sum(self.moved.values()):,}"]
        lines += [f"    {a} -> {b}: {n:,}" for (a, b), n in self.moves()]
        lines += [f"  added:                    {self.added:,}", f"  removed:                  {self.removed:,}"]
        for kind, texts in self.examples.items():
            lines += [f"  e.g. {kind}: {text}" for text in texts]
        return "\n".join(lines) + "\n"

    def moves(self) -> list[tuple[tuple[str, str], int]]:
        return sorted(self.moved.items(), key=lambda move: (_shard_order(move[0][0]), _shard_order(move[0][1])))


def compare(old: Side, new: Side, examples: int = 3) -> ShardingDiff:
    """Match the records of both sides by content, in an on-disk table (flat memory at any size)."""
    sides = [(old, old.shards()), (new, new.shards())]
    names = [list(shards) for _, shards in sides]
    diff = ShardingDiff(old.label, new.label)
    database = scratch_database()
    database.execute("CREATE TABLE record (line BLOB, side INTEGER, shard INTEGER)")
    for label, (side, shards) in enumerate(sides):
        diff.records[side.label] = 0
        for number, path in enumerate(shards.values()):
            with side.open(path) as stream:
                diff.records[side.label] += database.executemany(
                    "INSERT INTO record VALUES (?, ?, ?)", ((line, label, number) for line in stream)).rowcount
    rows = database.execute("SELECT line, side, shard, COUNT(*) FROM record GROUP BY line, side, shard "
                            "ORDER BY line, side, shard")
    for line, copies in itertools.groupby(rows, key=itemgetter(0)):
        counts: list[dict[str, int]] = [{}, {}]  # per side, the record's copies per shard name
        for _, side, shard, number in copies:
            counts[side][names[side][shard]] = number
        _settle(diff, line, counts[0], counts[1], examples)
    database.close()
    return diff


def _settle(diff: ShardingDiff, line: bytes, old: dict[str, int], new: dict[str, int], examples: int) -> None:
    """Account for the copies of one record: same shard name first, then moves in shard order, then the rest."""
    for name in set(old) & set(new):
        kept = min(old[name], new[name])
        diff.stayed += kept
        old[name] -= kept
        new[name] -= kept
    sources, targets = list(Counter(old).elements()), list(Counter(new).elements())  # in shard order
    for source, target in zip(sources, targets, strict=False):  # the longer side's rest: added or removed
        diff.moved[source, target] += 1
        _example(diff, f"moved {source} -> {target}", line, examples)
    rest = len(sources) - len(targets)
    diff.removed += max(rest, 0)
    diff.added += max(-rest, 0)
    if rest:
        _example(diff, "removed" if rest > 0 else "added", line, examples)


def _example(diff: ShardingDiff, kind: str, line: bytes, limit: int) -> None:
    texts = diff.examples.setdefault(kind, [])
    if len(texts) < limit:
        texts.append(json.loads(line)["instruction"][:60])


def main(argv: Sequence[str]) -> None:
    parser = ArgumentParser(prog="python3 -m src.shard_diff", description=__doc__.splitlines()[0])
    parser.add_argument("old", help="a git revision or an experiment name")
    parser.add_argument("new", nargs="?", help="another one (default: the workspace)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--examples", type=int, default=3, help="example records per kind of change")
    parser.add_argument("--dvc-yaml", default="dvc.yaml", type=Path)
    args = parser.parse_args(argv)
    repo = args.dvc_yaml.resolve().parent
    pattern = shard_path_pattern(args.dvc_yaml)
    diff = compare(Side(repo, args.old, pattern), Side(repo, args.new, pattern), args.examples)
    print(json.dumps(diff.as_json(), ensure_ascii=False, indent=2) + "\n" if args.json else diff.report(), end="")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
