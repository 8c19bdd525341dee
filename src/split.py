"""Stage split (the "split-4"): write one shard, a half-open range of merged records.

Usage: python3 -m src.split PARAMS SHARD_NAME MERGED SHARD_OUT METRICS_OUT
The whole sharding is checked (count, order, overlaps, gaps, bounds) before anything is written.
"""
from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import DatasetError, expect_args, run_cli
from .jsonl import atomic_file, count_lines, iter_lines, shard_line, write_json
from .params import ShardRange, load_params
from .stats import RecordStats


def shard_records(merged_lines: Iterable[bytes], shard: ShardRange) -> Iterator[dict]:
    """The merged records in ``shard``'s range, parsed from the merged file's lines."""
    for line in islice(merged_lines, shard.start, shard.stop):
        yield json.loads(line)


def main(argv: Sequence[str]) -> None:
    params_path, name, merged, shard_out, metrics_out = expect_args(
        argv, ("PARAMS", "SHARD_NAME", "MERGED", "SHARD_OUT", "METRICS_OUT"), "src.split")
    split = load_params(Path(params_path)).split
    shard = split.shard(name)
    try:
        records = count_lines(Path(merged))
    except OSError as error:
        raise DatasetError(f"{merged}: cannot read ({error.strerror}); run the merge stage (dvc repro merge)") from None
    split.check_records(records)
    stats = RecordStats()
    size = 0
    with atomic_file(Path(shard_out)) as stream:
        for record in shard_records(iter_lines(Path(merged)), shard):
            line = shard_line(record)
            stream.write(line)
            size += len(line)
            stats.add(record)
    write_json(Path(metrics_out), {**stats.summary(), "bytes": size, "start": shard.start, "stop": shard.stop})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
