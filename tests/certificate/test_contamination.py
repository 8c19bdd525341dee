"""Contamination: records whose instruction or output shares a run of n characters with an evaluation item."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from src.certificate import contamination
from src.certificate.contamination import EVAL_NGRAMS, EvalSet, item_texts, load_eval_set
from src.core.config import ContaminationParams
from src.core.errors import DatasetError
from src.core.scratch import scratch_database
from src.records.lines import shard_line

QUESTION = "日本で一番高い山はどこですか。富士山について教えてください。"  # 31 characters
ANSWER = "琵琶湖は滋賀県にある日本最大の湖で、面積は約六百七十平方キロメートルです。"


@pytest.fixture
def database() -> Iterator[duckdb.DuckDBPyConnection]:
    with scratch_database() as database:
        yield database


def write_eval(tmp_path: Path) -> ContaminationParams:
    (tmp_path / "quiz.json").write_text(json.dumps([{"question": QUESTION, "answer": "富士山", "id": 7}],
                                                   ensure_ascii=False), encoding="utf-8")
    (tmp_path / "bench.jsonl").write_text(json.dumps({"text": ANSWER}, ensure_ascii=False) + "\n", encoding="utf-8")
    return ContaminationParams(13, (("quiz", str(tmp_path / "quiz.json")), ("bench", str(tmp_path / "bench.jsonl"))))


def test_an_items_text_is_the_item_or_its_string_values() -> None:
    assert item_texts("問い") == ["問い"]
    assert item_texts({"q": "問い", "choices": ["a"], "n": 3, "a": "答え"}) == ["問い", "答え"]
    assert item_texts(12) == []


def test_eval_files_are_read_and_described(tmp_path: Path, database: duckdb.DuckDBPyConnection) -> None:
    eval_set = load_eval_set(write_eval(tmp_path), database)
    assert eval_set.files["quiz"]["items"] == 1 and eval_set.files["bench"]["items"] == 1
    # "富士山" is shorter than 13 characters: it adds no n-gram.
    assert eval_set.files["quiz"]["ngrams"] == len(QUESTION) - 12
    assert database.execute(f"SELECT count(*) FROM {EVAL_NGRAMS}").fetchone() == (len(QUESTION) - 12 + len(ANSWER) - 12,)
    assert len(eval_set.files["quiz"]["sha256"]) == 64


def test_a_text_is_contaminated_by_one_shared_n_gram(tmp_path: Path, database: duckdb.DuckDBPyConnection) -> None:
    eval_set = load_eval_set(write_eval(tmp_path), database)
    texts = ["前置き" + QUESTION[5:18] + "後書き", "前置き" + QUESTION[5:17] + "後書き", ANSWER, "", "富士山"]
    assert eval_set.shared(texts).tolist() == [True, False, True, False, False]


def test_records_are_flagged_by_instruction_or_output(tmp_path: Path, monkeypatch,
                                                      database: duckdb.DuckDBPyConnection) -> None:
    monkeypatch.setattr(contamination, "TEXT_CHUNK_RECORDS", 3)  # hashed a few records at a time
    eval_set = load_eval_set(write_eval(tmp_path), database)
    records = [{"instruction": QUESTION, "input": "", "output": "はい"},
               {"instruction": "別の質問", "input": QUESTION, "output": "はい"},  # input is not checked
               {"instruction": "湖は？", "input": "", "output": ANSWER + "以上です。"},
               {"instruction": "山は？", "input": "", "output": "富士山"}]
    assert eval_set.contaminated(b"".join(map(shard_line, records))).tolist() == [True, False, True, False]


def test_without_eval_files_nothing_is_read_or_flagged() -> None:
    lines = shard_line({"instruction": QUESTION, "input": "", "output": QUESTION}) * 2
    assert EvalSet.none().contaminated(lines).tolist() == [False, False]


@pytest.mark.parametrize("content, message", [
    (None, "{path}: evaluation file not found (contamination.eval.quiz); create it or remove it from params.yaml"),
    ('[{"q": "短い"}]', "{path}: no text of 13 characters or more in its 1 items (contamination.eval.quiz); check "
                       "the file, or lower contamination.ngram"),
    ('[{"q": "x"', "{path}:1: record 1 is truncated (the file ends before it is closed); fix the JSON there"),
    ('[{"q": "これは十三文字より長い問題文です", "q": "x"}]',
     "{path}:1 (record 1): the name 'q' appears twice in one object; keep only the value you mean"),
    ('{"q": "短い"}\n{"q": "これは十三文字より長い問題文です", "a": {"n": 1, "n": 2}}\n',
     "{path}:2: the name 'n' appears twice in one object; keep only the value you mean"),
])
def test_bad_eval_files_are_refused_with_one_line(tmp_path: Path, content: str | None, message: str,
                                                  database: duckdb.DuckDBPyConnection) -> None:
    path = tmp_path / "quiz.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        load_eval_set(ContaminationParams(13, (("quiz", str(path)),)), database)
    assert str(error.value) == message.format(path=path)
