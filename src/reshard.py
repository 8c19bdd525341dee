"""Rewrite split.count and split.shards of params.yaml into N even, contiguous shards.

Usage: python3 -m src.reshard N [--records TOTAL | --even] [--params PARAMS] [--dvc-yaml DVC_YAML] (docs/pipeline.md)
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from src.core.config import SplitParams, even_ranges, parse_params_text, shard_name
from src.core.errors import ArgumentParser, DatasetError, run_cli
from src.output.files import atomic_file
from src.records.lines import count_lines

INDENT = "  "  # of the split section's keys


def _block(lines: list[str], key: str, indent: str, required: bool = True) -> tuple[int, int]:
    """[begin, end) of the line ``key:`` at ``indent`` and the lines below it indented deeper (if not ``required``
    and absent: the empty range at the end)."""
    starts = [n for n, line in enumerate(lines) if line.split("#")[0].rstrip() == f"{indent}{key}:"
              or line.startswith(f"{indent}{key}: ")]
    if not starts and not required:
        return len(lines), len(lines)
    if len(starts) != 1:
        raise DatasetError(f"params.yaml: expected exactly one '{indent}{key}:' line in the split section")
    end = starts[0] + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent + " ")):
        end += 1
    while end > starts[0] + 1 and not lines[end - 1].strip():  # blank lines belong to what follows
        end -= 1
    return starts[0], end


def rewrite_sharding(text: str, count: int, records: int | None) -> str:
    """``text`` with only split.count and split.shards rewritten: ``count`` even ranges of ``records`` records, or
    (None) no split.shards at all."""
    lines = text.splitlines(keepends=True)
    split_begin, split_end = _block(lines, "split", "")
    split = lines[split_begin:split_end]
    split[_block(split, "count", INDENT)[0]] = f"{INDENT}count: {count}\n"
    shards_begin, shards_end = _block(split, "shards", INDENT, required=False)
    split[shards_begin:shards_end] = [] if records is None else [f"{INDENT}shards:\n"] + [
        f"{INDENT * 2}shard{number}: {stop}\n" for number, (_, stop) in enumerate(even_ranges(records, count), 1)]
    return "".join(lines[:split_begin] + split + lines[split_end:])


def merged_records(dvc_yaml: Path) -> int:
    """The number of records in the merge stage's data output, as dvc.yaml names it."""
    try:
        outs = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]["merge"]["outs"]
        merged = Path(dvc_yaml.parent, next(out for out in outs if isinstance(out, str) and out.startswith("data/")))
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        raise DatasetError(f"{dvc_yaml}: cannot find the merge stage's output; give the count with "
                           "--records TOTAL") from None
    if not merged.is_file():
        raise DatasetError(f"{merged} is not here, so its record count is unknown; run `dvc repro merge` "
                           "(or `dvc pull merge`) first, or give the count with --records TOTAL")
    return count_lines(merged)


def main(argv: Sequence[str]) -> None:
    parser = ArgumentParser(prog="python3 -m src.reshard", description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of shards")
    parser.add_argument("--records", type=int, help="number of merged records to cover (default: all)")
    parser.add_argument("--even", action="store_true",
                        help="leave split.shards out: the split cuts count even shards of whatever the merged data "
                             "holds (the cheapest form for many shards)")
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--dvc-yaml", default="dvc.yaml", type=Path)
    args = parser.parse_args(argv)
    try:
        original = args.params.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{args.params}: cannot read ({error})") from None
    records = None
    if not args.even:
        records = args.records if args.records is not None else merged_records(args.dvc_yaml)
    text = rewrite_sharding(original, args.count, records)
    SplitParams.parse(parse_params_text(text, args.params)["split"])  # the result must be a valid sharding
    with atomic_file(args.params) as stream:
        stream.write(text.encode("utf-8"))
    covered = "even shards of the merged records" if args.even else f"{records} records"
    print(f"{args.params}: split.count = {args.count}, {covered}, "
          f"shards {shard_name(1, args.count)} .. {shard_name(args.count, args.count)}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
