"""The Hugging Face `datasets` path: Dataset.from_json -> shard(COUNT, k, contiguous=True) -> to_json.

Usage: python3 hf_path.py JSONL OUT_DIR COUNT

Writes OUT_DIR/K_of_COUNT.jsonl for K = 1..COUNT with the columns instruction, input, output
(force_ascii=False). Run it with HF_DATASETS_CACHE and HF_HOME set and offline; the benchmark does.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset

FIELDS = ["instruction", "input", "output"]


def main(argv: Sequence[str]) -> None:
    source, out_dir, count_text = argv
    count = int(count_text)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = Dataset.from_json(source)
    for number in range(count):
        shard = dataset.shard(count, number, contiguous=True).select_columns(FIELDS)
        shard.to_json(str(out / f"{number + 1}_of_{count}.jsonl"), force_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1:])
