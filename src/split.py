"""Stage split (the "split-4"): cut the merged records into the shards of params.yaml, and describe them.

Usage: python3 -m src.split PARAMS DVC_YAML MERGED RECORD_INDEX PROVENANCE SHARD_PATH CARD METRICS SHARDS_TABLE
                            CATEGORIES_TABLE LENGTHS_TABLE LEAKAGE_TABLE CONTAMINATION_TABLE
SHARD_PATH names every shard file, {shard} standing for the shard's name (K_of_N). Its directory is replaced whole,
once everything is checked and written, so it holds exactly the shards of params.yaml and CARD, the dataset card
(src/sharding/card.py). The evaluation files of contamination.eval must be deps of the split stage in DVC_YAML.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from src.certificate.contamination import load_eval_set
from src.core.config import load_params
from src.core.deps import check_declared, stage_deps
from src.core.errors import DatasetError, expect_args, run_cli
from src.core.progress import counted_chunks, line_progress
from src.core.scratch import scratch_database
from src.output.files import atomic_directory, write_durable, write_json, write_json_rows
from src.records.index import RecordIndex
from src.records.lines import read_prompts
from src.sharding.card import render_card
from src.sharding.tables import ShardFile, ShardRecords, rows_of
from src.sharding.writer import SHARD_PLACEHOLDER, ShardFiles, laid_out, shard_path_parts, shard_pieces

TABLES = ("shards", "categories", "lengths", "leakage", "contamination")


def main(argv: Sequence[str]) -> None:
    (params_path, dvc_yaml, merged, record_index, provenance_path, shard_path, card_path, metrics_out,
     *table_paths) = expect_args(argv, ("PARAMS", "DVC_YAML", "MERGED", "RECORD_INDEX", "PROVENANCE", "SHARD_PATH",
                                        "CARD", "METRICS", *(f"{name.upper()}_TABLE" for name in TABLES)), "src.split")
    params = load_params(Path(params_path))
    check_declared("split", {f"contamination.eval.{name}": path for name, path in params.contamination.eval_files},
                   stage_deps(Path(dvc_yaml), "split"))
    directory, file_name = shard_path_parts(shard_path)
    if Path(card_path).parent != directory:
        raise DatasetError(f"{card_path}: the dataset card goes in the shard directory {directory}")
    for path in (merged, record_index, provenance_path):
        if not Path(path).is_file():
            raise DatasetError(f"{path}: missing; run the merge stage (dvc repro merge)")
    provenance = json.loads(Path(provenance_path).read_text(encoding="utf-8"))
    with RecordIndex(Path(record_index)) as index, scratch_database() as database:
        eval_set = load_eval_set(params.contamination, database)
        if index.records != sum(source["kept"] for source in provenance["sources"].values()):
            raise DatasetError(f"{record_index}: does not match {provenance_path}; run the merge stage again "
                               "(dvc repro -f merge)")
        split = params.split.for_records(index.records)
        with ShardRecords(len(split.shards), eval_set, params.near_duplicates, partial(read_prompts, Path(merged)),
                          index.records) as shard_records:
            with atomic_directory(directory) as staging:
                paths = [staging / file_name.replace(SHARD_PLACEHOLDER, shard.name) for shard in split.shards]
                with ShardFiles(paths) as files, line_progress([Path(merged)], "split") as bar:
                    for piece in shard_pieces(counted_chunks(laid_out(Path(merged), index, split), bar), split):
                        files.write(piece.shard, piece.lines)
                        shard_records.add(piece)
                    files.close()
                    leakage = shard_records.leakage()  # grouped while the shards are read back and hashed
                    md5s = files.md5s()
                written = [ShardFile(shard.name, shard.start, shard.stop, len(shard), size, md5)
                           for shard, size, md5 in zip(split.shards, files.bytes, md5s, strict=True)]
                tables, headline = shard_records.tables(written, leakage)
                card = render_card(params.card, split, provenance, tables["shards"], tables["categories"],
                                   file_name, SHARD_PLACEHOLDER, headline, eval_set.files, eval_set.ngram)
                write_durable(staging / Path(card_path).name, card.encode("utf-8"))
            write_json(Path(metrics_out), {**headline, "strategy": split.strategy, "seed": split.seed})
            for name, path in zip(TABLES, table_paths, strict=True):
                write_json_rows(Path(path), rows_of(tables[name]))  # contamination indices are read as written


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
