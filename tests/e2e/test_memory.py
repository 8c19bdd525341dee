"""Peak memory of every stage is flat in the number of records (4N within 1.1x of N), and within 256 MiB: the imports
(numpy, pandas with pyarrow, DuckDB) take about 100 MiB of it, a DuckDB connection about 24 MiB, its scratch
database (src/core/scratch.py) at most its 32 MB limit.

Each stage script runs alone in a fresh process, at N and at 4N records: the built-in sample and a JSON Lines file
of as many records, which the raw stage reads on its worker processes. N is large enough for every bounded buffer to
have filled: the raw stage's batches in flight, the blocks queued behind the writers and what the allocator keeps of
them reach their steady state only after a few hundred batches. Measured here at N and 4N: raw 84 and 84 to 85 MiB,
merge 128 to 131 and 129 MiB, split 203 and 210 MiB. The raw stage stays flat only because the pages its workers
share with it stay shared (src/sources/encode.py's Workers): without that it measured 92 and 107 MiB. The peak is
what the benchmark's wrapper (bench/measure.py) reads: the largest process's ru_maxrss, or the sampled peak of the
proportional set sizes of the stage and the workers it forks, summed, whichever is larger. The split checks
contamination against an evaluation file (outputs of other sample records), so every table it keeps is exercised.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.sources.encode import MAX_WORKERS
from src.sources.sample import sample_records
from tests.project import PROJECT_ROOT

pytestmark = pytest.mark.e2e

RECORDS = 100_000
LIMIT_BYTES = 256 << 20
FLAT = 1.1  # the largest ratio of a stage's peak at 4N to its peak at N
MEASURE = PROJECT_ROOT / "bench" / "measure.py"


def stage_commands(work: Path) -> dict[str, list[str]]:
    """The stage commands of dvc.yaml, run from the project directory on files in ``work``."""
    return {
        "raw": ["src.raw", str(work / "params.yaml"), str(work / "dvc.yaml"), str(work / "downloads"),
                str(work / "raw")],
        "merge": ["src.merge", str(work / "params.yaml"), str(work / "raw"), str(work / "merged.jsonl"),
                  str(work / "records.npy"), str(work / "sources.json"), str(work / "merge.json")],
        "split": ["src.split", str(work / "params.yaml"), str(work / "dvc.yaml"), str(work / "merged.jsonl"),
                  str(work / "records.npy"), str(work / "sources.json"), str(work / "shards" / "x-{shard}.jsonl"),
                  str(work / "shards" / "README.md"), str(work / "split.json"),
                  *(str(work / f"{table}.json") for table in ("shards", "categories", "lengths", "leakage",
                                                              "contamination"))],
    }


def peaks(work: Path, records: int) -> dict[str, int]:
    work.mkdir()
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    source = work / "source.jsonl"
    source.write_text("".join(json.dumps({**record, "index": f"file-{number}"}, ensure_ascii=False) + "\n"
                              for number, record in enumerate(sample_records(records, 2))), encoding="utf-8")
    params["raw"]["sources"] = {"sample": {"sample": {"records": records, "seed": 1}}, "file": {"path": str(source)}}
    params["split"].update(count=4, shards={f"shard{k}": records * k // 2 for k in range(1, 5)})
    evaluation = work / "eval.jsonl"
    evaluation.write_text("".join(json.dumps({"answer": record["output"]}, ensure_ascii=False) + "\n"
                                  for record in sample_records(200, 99)), encoding="utf-8")
    params["contamination"] = {"ngram": 13, "eval": {"sample": str(evaluation)}}
    (work / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    pipeline = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    pipeline["stages"]["split"]["deps"].append(str(evaluation))
    pipeline["stages"]["raw"]["deps"].append(str(source))
    (work / "dvc.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    found = {}
    for stage, command in stage_commands(work).items():
        result = subprocess.run([sys.executable, "-I", "-S", str(MEASURE), "600", str(work / f"{stage}.out"),
                                 str(work / f"{stage}.err"), "--", sys.executable, "-m", *command],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=700, check=True)
        measured = json.loads(result.stdout)
        assert measured["returncode"] == 0, (work / f"{stage}.err").read_text(encoding="utf-8")
        found[stage] = max(measured["peak_kib"], measured["group_pss_kib"].get(str(measured["pid"]), 0)) * 1024
        if stage == "raw":  # the stage and its workers, one per core, were sampled as one program
            assert measured["group_processes"][str(measured["pid"])] == 1 + min(len(os.sched_getaffinity(0)),
                                                                                MAX_WORKERS)
    return found


def test_every_stage_peaks_below_256_mib_and_flat_in_the_record_count(tmp_path: Path) -> None:
    small, large = peaks(tmp_path / "n", RECORDS), peaks(tmp_path / "4n", 4 * RECORDS)
    for stage in ("raw", "merge", "split"):
        assert large[stage] <= LIMIT_BYTES, (stage, large)
        assert large[stage] <= FLAT * small[stage], (stage, small, large)
