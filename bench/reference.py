"""The reference conversion: json.load the whole array, per-shard lists, a pandas DataFrame, json.dumps per row.

Usage: python3 reference.py ARRAY_JSON OUT_DIR COUNT

Writes OUT_DIR/K_of_COUNT.jsonl for K = 1..COUNT. Shard K holds the records of the K-th of COUNT
even, contiguous ranges (sizes differ by at most one, the larger ones first); each line is
json.dumps({instruction, input, output}, ensure_ascii=False) with the default separators, then "\\n".
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pandas as pd

FIELDS = ["instruction", "input", "output"]


def even_ranges(records: int, count: int) -> list[tuple[int, int]]:
    """The reference's own cut (no project code): shard k starts at k * records // count, rounded up for the first
    records % count shards, as src.reshard cuts."""
    base, extra = divmod(records, count)
    bounds = [number * base + min(number, extra) for number in range(count + 1)]
    return list(pairwise(bounds))


def main(argv: Sequence[str]) -> None:
    source, out_dir, count_text = argv
    count = int(count_text)
    with open(source, encoding="utf-8") as stream:
        records = json.load(stream)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for number, (start, stop) in enumerate(even_ranges(len(records), count), 1):
        frame = pd.DataFrame(records[start:stop], columns=FIELDS)
        with (out / f"{number}_of_{count}.jsonl").open("w", encoding="utf-8", newline="\n") as stream:
            for row in frame.to_dict(orient="records"):
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
