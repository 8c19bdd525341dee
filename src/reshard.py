"""Rewrite split.count and split.shards of params.yaml into N even, contiguous shards.

Usage: python3 -m src.reshard N [--records TOTAL] [--params PARAMS] [--dvc-yaml DVC_YAML]
TOTAL defaults to the number of records in the merged data (the merge stage's output, as dvc.yaml names it).
Only the lines of split.count and split.shards change; the rest of params.yaml, comments included, is kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from .errors import ArgumentParser, DatasetError, run_cli
from .jsonl import atomic_file, count_lines
from .params import SplitParams, parse_params_text, shard_name

SHARDS_INDENT = "  "


def even_ranges(records: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous [start, stop) ranges over ``records``; sizes differ by at most one."""
    if count < 1 or records < count:
        raise DatasetError(f"cannot cut {records} records into {count} non-empty shards; choose 1..{records} shards")
    base, extra = divmod(records, count)
    ranges, start = [], 0
    for number in range(count):
        stop = start + base + (1 if number < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def _top_level_block(lines: list[str], key: str, indent: str) -> tuple[int, int]:
    """[begin, end) of the lines of ``key:`` at ``indent`` and everything indented deeper below it."""
    starts = [n for n, line in enumerate(lines) if line.split("#")[0].rstrip() == f"{indent}{key}:"
              or line.startswith(f"{indent}{key}: ")]
    if len(starts) != 1:
        raise DatasetError(f"params.yaml: expected exactly one '{indent}{key}:' line in the split section")
    begin = starts[0]
    end = begin + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent + " ")):
        end += 1
    while end > begin + 1 and not lines[end - 1].strip():  # blank lines belong to what follows
        end -= 1
    return begin, end


def rewrite_sharding(text: str, count: int, records: int) -> str:
    """``text`` with split.count and split.shards replaced by ``count`` even shards of ``records`` records."""
    lines = text.splitlines(keepends=True)
    split_begin, split_end = _top_level_block(lines, "split", "")
    block = lines[split_begin:split_end]
    count_line = _top_level_block(block, "count", SHARDS_INDENT)[0]
    block[count_line] = f"{SHARDS_INDENT}count: {count}\n"
    shards_begin, shards_end = _top_level_block(block, "shards", SHARDS_INDENT)
    shards = [f"{SHARDS_INDENT}shards:\n"] + [f"{SHARDS_INDENT * 2}shard{number}: {stop}\n"
                                              for number, (_, stop) in enumerate(even_ranges(records, count), 1)]
    block[shards_begin:shards_end] = shards
    return "".join(lines[:split_begin] + block + lines[split_end:])


def merged_path(dvc_yaml: Path) -> Path:
    """The merge stage's data output, as dvc.yaml names it."""
    try:
        outs = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]["merge"]["outs"]
        return Path(dvc_yaml.parent, next(out for out in outs if isinstance(out, str) and out.startswith("data/")))
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        raise DatasetError(f"{dvc_yaml}: cannot find the merge stage's output; give the count with "
                           "--records TOTAL") from None


def merged_records(dvc_yaml: Path) -> int:
    merged = merged_path(dvc_yaml)
    if not merged.is_file():
        raise DatasetError(f"{merged} is not here, so its record count is unknown; run `dvc repro merge` "
                           "(or `dvc pull merge`) first, or give the count with --records TOTAL")
    return count_lines(merged)


def main(argv: Sequence[str]) -> None:
    parser = ArgumentParser(prog="python3 -m src.reshard", description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of shards")
    parser.add_argument("--records", type=int, help="number of merged records to cover (default: all)")
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--dvc-yaml", default="dvc.yaml", type=Path)
    args = parser.parse_args(argv)
    try:
        original = args.params.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{args.params}: cannot read ({error})") from None
    records = args.records if args.records is not None else merged_records(args.dvc_yaml)
    text = rewrite_sharding(original, args.count, records)
    SplitParams.parse(parse_params_text(text, args.params)["split"])  # the result must be a valid sharding
    with atomic_file(args.params) as stream:
        stream.write(text.encode("utf-8"))
    print(f"{args.params}: split.count = {args.count}, {records} records, "
          f"shards {shard_name(1, args.count)} .. {shard_name(args.count, args.count)}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
