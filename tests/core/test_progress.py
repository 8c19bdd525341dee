"""Progress on a terminal, silence elsewhere."""
from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from src.core import progress
from src.core.progress import counted_chunks, line_progress, record_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass(frozen=True)
class Chunk:
    lines: list[bytes]

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.lines))


def lines_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b'{"x": "y"}\n' * count)
    return path


def chunks_of(path: Path, size: int) -> Iterator[Chunk]:
    with path.open("rb") as stream:
        while lines := list(itertools.islice(stream, size)):
            yield Chunk(lines)


def test_a_terminal_sees_records_bytes_rate_and_eta(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(progress, "SHOW_AFTER_SECONDS", 0)
    path, screen = lines_file(tmp_path, 100), Terminal()
    with line_progress([path], "split", file=screen) as bar:
        chunks = list(counted_chunks(chunks_of(path, 10), bar))
        bar.refresh()
    assert sum(map(len, chunks)) == 100
    shown = screen.getvalue().split("\r")
    assert shown[2].startswith("split: 100% 1.10k/1.10kB, 100 records [") and shown[2].endswith("B/s, ETA 00:00]")
    assert shown[-1] == ""  # the bar clears its line when the stage ends


def test_nothing_is_printed_when_stderr_is_not_a_terminal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(progress, "SHOW_AFTER_SECONDS", 0)
    path, log = lines_file(tmp_path, 10_000), io.StringIO()
    with line_progress([path], "split", file=log) as bar:
        assert sum(map(len, counted_chunks(chunks_of(path, 4096), bar))) == 10_000
    with record_progress("raw s", file=log) as bar:
        bar.update(10_000)
    assert log.getvalue() == ""


def test_a_short_run_stays_quiet_even_on_a_terminal(tmp_path: Path) -> None:
    path, screen = lines_file(tmp_path, 100), Terminal()
    with line_progress([path], "split", file=screen) as bar:
        list(counted_chunks(chunks_of(path, 10), bar))
    assert screen.getvalue() == ""
