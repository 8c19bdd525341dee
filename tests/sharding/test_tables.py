"""What the split counts as shards are written: contaminated indices come back per shard, in laid-out order, a batch
at a time."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from src.certificate.contamination import load_eval_set
from src.core.config import ContaminationParams, NearDuplicateParams
from src.core.scratch import scratch_database
from src.records.lines import shard_line
from src.sharding import tables
from src.sharding.tables import ShardRecords
from src.sharding.writer import ShardPiece
from src.sources.encode import encode_records

ANSWER = "琵琶湖は滋賀県にある日本最大の湖で、面積は約六百七十平方キロメートルです。"


def test_contaminated_indices_come_back_per_shard_in_laid_out_order_a_batch_at_a_time(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    monkeypatch.setattr(tables, "INDEX_BATCH", 2048)
    (tmp_path / "eval.jsonl").write_text(json.dumps({"a": ANSWER}, ensure_ascii=False) + "\n", encoding="utf-8")
    records = [{"index": str(n), "instruction": f"問{n}", "input": "", "category": "open_qa",
                "output": ANSWER if n % 3 else "いいえ"} for n in range(9000)]
    _, rows = encode_records(records)
    order = np.arange(9000)[::-1]  # laid out backwards, as a strategy may: shard 0 holds 8999 .. 4500
    with scratch_database() as database:
        eval_set = load_eval_set(ContaminationParams(13, (("quiz", str(tmp_path / "eval.jsonl")),)), database)
        with ShardRecords(2, eval_set, NearDuplicateParams(), lambda offsets: [], 9000) as shard_records:
            for start in range(0, 9000, 500):  # each shard's indices are appended 9 times
                laid = order[start:start + 500]
                shard_records.add(ShardPiece(int(start >= 4500), laid, rows[laid],
                                             b"".join(shard_line(records[n]) for n in laid)))
            batches = [list(shard_records._indices(shard)) for shard in (0, 1)]
    assert [[len(batch) for batch in shard] for shard in batches] == [[2048, 952], [2048, 952]]
    assert [np.concatenate(shard).tolist() for shard in batches] == \
        [[n for n in order[:4500].tolist() if n % 3], [n for n in order[4500:].tolist() if n % 3]]
