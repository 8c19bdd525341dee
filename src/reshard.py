"""Rewrite split.count and split.shards of params.yaml into N even, contiguous ranges.

Usage: python3 -m src.reshard N [--records TOTAL] [--params PARAMS]
TOTAL defaults to the end of the current sharding (the merged record count when there are no gaps).
Only the `split:` block is rewritten; the rest of params.yaml, comments included, is kept.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .errors import DatasetError, run_cli
from .jsonl import atomic_file
from .params import SplitParams, parse_params_text, read_params_file, shard_name


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


def split_block(count: int, records: int, allow_gaps: bool) -> str:
    lines = [
        "split:",
        "  # Shard K_of_N is data/shards/databricks-dolly-16k-line_ja-K_of_N.jsonl: merged records [start, stop).",
        "  # Rewrite evenly for another count with: python3 -m src.reshard N",
        f"  count: {count}",
        f"  allow_gaps: {'true' if allow_gaps else 'false'}",
        "  shards:",
    ]
    for number, (start, stop) in enumerate(even_ranges(records, count), 1):
        lines += [f"    {shard_name(number, count)}:", f"      start: {start}", f"      stop: {stop}"]
    return "\n".join(lines) + "\n"


def replace_split_block(text: str, block: str) -> str:
    """Swap the top-level `split:` block of params.yaml text for ``block``."""
    lines = text.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines) if line.split("#")[0].rstrip() == "split:"]
    if len(starts) != 1:
        raise DatasetError("params.yaml: expected exactly one top-level 'split:' line")
    begin = starts[0]
    end = next((n for n in range(begin + 1, len(lines)) if lines[n].strip() and not lines[n][0].isspace()),
               len(lines))
    return "".join(lines[:begin]) + block + "".join(lines[end:])


def current_end(split: object) -> int:
    """The largest stop in the current sharding (tolerant: the sharding may be the thing being fixed)."""
    shards = split.get("shards") if isinstance(split, dict) else None
    stops = [spec.get("stop") for spec in (shards or {}).values() if isinstance(spec, dict)]
    stops = [stop for stop in stops if isinstance(stop, int) and not isinstance(stop, bool)]
    if not stops:
        raise DatasetError("split.shards has no usable stop; give the record count with --records TOTAL")
    return max(stops)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m src.reshard", description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of shards")
    parser.add_argument("--records", type=int, help="number of merged records to cover")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    document = read_params_file(args.params)
    split = document["split"]
    records = args.records if args.records is not None else current_end(split)
    allow_gaps = bool(split.get("allow_gaps", False)) if isinstance(split, dict) else False
    text = replace_split_block(args.params.read_text(encoding="utf-8"), split_block(args.count, records, allow_gaps))
    SplitParams.parse(parse_params_text(text, args.params)["split"])  # the result must be a valid sharding
    with atomic_file(args.params) as stream:
        stream.write(text.encode("utf-8"))
    print(f"{args.params}: split.count = {args.count}, {records} records, "
          f"shards {shard_name(1, args.count)} .. {shard_name(args.count, args.count)}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
