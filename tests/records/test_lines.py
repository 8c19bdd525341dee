"""The shard and record line formats (src/records/lines.py)."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from src.records.lines import count_lines, merged_head_start, prompt_bytes, raw_record_line, read_prompts, shard_line
from tests.records_data import record_line

AWKWARD_TEXTS = ["", "富士山は日本一高い山です。", 'quote " and backslash \\', "tab\tnew\nline\rreturn",
                 "line separator \u2028 and paragraph \u2029", "emoji 🗻 and NUL \x00", "/ slash <b>&amp;</b>"]


@pytest.mark.parametrize("text", AWKWARD_TEXTS)
def test_shard_line_is_exactly_json_dumps_with_default_separators(text: str) -> None:
    record = {"index": "9", "category": "open_qa", "output": text + "o", "input": text, "instruction": "i" + text}
    expected = json.dumps({"instruction": "i" + text, "input": text, "output": text + "o"}, ensure_ascii=False)
    assert shard_line(record) == (expected + "\n").encode("utf-8")


def test_shard_line_bytes_for_a_known_record() -> None:
    line = shard_line({"instruction": "山は？", "input": "", "output": "富士\n山", "category": "open_qa"})
    assert line == '{"instruction": "山は？", "input": "", "output": "富士\\n山"}\n'.encode()
    assert not line.startswith(b"\xef\xbb\xbf")


def test_count_lines_counts_newlines_only_not_unicode_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes('{"a": "x\u2028y\x85z"}\n{"a": "2"}\n'.encode("utf-8"))
    assert count_lines(path) == 2


TRICKY_TEXTS = ['", "instruction": "x', '", "output": "y', '\\", "output": "', "\\", '"', "\u2028\u2029\x85\r\x00",
                "𠮷🍣", "", "ok"]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_a_record_line_holds_exactly_the_shard_line_and_its_prompt(text: str) -> None:
    record = {"instruction": "問" + text, "input": text, "output": text + "答"}
    head = {"index": text or "0", "category": "open_qa", "source": "s", "source_index": text, "chars": [1, 2, 3]}
    line = record_line(head, shard_line(record))
    assert json.loads(line) == {**head, **record}
    assert prompt_bytes(shard_line(record)) == json.dumps(
        {"instruction": record["instruction"], "input": record["input"]},
        ensure_ascii=False).encode("utf-8")[:-2]  # up to the input's closing quote


@pytest.mark.parametrize("text", [*TRICKY_TEXTS, ',"category":"x', ',"chars":[1]', '{"index":'])
def test_raw_and_merged_record_lines_are_the_heads_and_shard_line_written_by_copying_bytes(text: str) -> None:
    record = {"index": text or "0", "category": "summarization", "instruction": "問" + text, "input": text,
              "output": text + "答"}
    chars = [len(record["instruction"]), len(text), len(record["output"])]
    line, head, output = raw_record_line(record)
    assert line == record_line({"source_index": record["index"], "category": "summarization", "chars": chars},
                                    shard_line(record))
    assert line[head:] == b", " + shard_line(record)[1:]
    assert line[head:output] == b", " + prompt_bytes(shard_line(record))[1:] + b'"'
    assert merged_head_start(12, orjson.dumps("s-" + text)) + line[1:] == record_line(
        {"index": "12", "source": "s-" + text, "source_index": record["index"], "category": "summarization",
         "chars": chars}, shard_line(record))


def test_prompts_are_read_back_by_offset(tmp_path: Path) -> None:
    records = [{"instruction": "問" + text, "input": text, "output": text + "答"} for text in TRICKY_TEXTS]
    heads = [{"index": str(n), "source_index": text} for n, text in enumerate(TRICKY_TEXTS)]
    lines = [record_line(head, shard_line(record)) for head, record in zip(heads, records, strict=True)]
    starts = [sum(map(len, lines[:n])) for n in range(len(lines))]
    merged = tmp_path / "merged.jsonl"
    merged.write_bytes(b"".join(lines))
    assert read_prompts(merged, [starts[2], starts[0], starts[2]]) == \
        [prompt_bytes(shard_line(records[n])) for n in (2, 0, 2)]


def reference_shard_line(record: dict) -> bytes:
    return (json.dumps({"instruction": record["instruction"], "input": record["input"], "output": record["output"]},
                       ensure_ascii=False) + "\n").encode("utf-8")


def test_shard_lines_equal_the_reference_for_every_code_point() -> None:
    """shard_line encodes text with orjson: byte-identical to json.dumps(ensure_ascii=False) for every character
    (lone surrogates cannot reach it: validation refuses them)."""
    characters = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    for start in range(0, len(characters), 4096):
        text = "".join(characters[start:start + 4096])
        record = {"instruction": text, "input": text[::-1], "output": text[:7]}
        assert shard_line(record) == reference_shard_line(record), hex(ord(text[0]))
    for character in characters:  # and one at a time, so no neighbour could hide a difference
        assert shard_line({"instruction": character, "input": "", "output": "x"}) == reference_shard_line(
            {"instruction": character, "input": "", "output": "x"})
