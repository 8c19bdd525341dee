"""Progress of a long stage on a terminal (records done, MB/s, ETA), with tqdm; silent when stderr is not a
terminal (CI logs, `dvc exp` queue workers) and for runs shorter than a couple of seconds."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

SHOW_AFTER_SECONDS = 2.0
UPDATE_EVERY_LINES = 4096


def line_progress(paths: Iterable[Path], description: str, file: IO[str] | None = None) -> tqdm:
    """A byte-counting bar over the total size of ``paths``; disabled unless ``file`` (stderr) is a terminal."""
    total = sum(path.stat().st_size for path in paths)
    return tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1000, disable=None,
                delay=SHOW_AFTER_SECONDS, mininterval=0.5, leave=False, file=file,
                bar_format="{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt}B{postfix} [{rate_fmt}, ETA {remaining}]")


def counted_lines(lines: Iterable[bytes], bar: tqdm) -> Iterator[bytes]:
    """``lines``, advancing ``bar`` by their bytes and showing the record count, in steps (cheap per line)."""
    size = 0
    for count, line in enumerate(lines, 1):
        size += len(line)
        if count % UPDATE_EVERY_LINES == 0:
            bar.update(size)
            bar.set_postfix_str(f"{count:,} records", refresh=False)
            size = 0
        yield line
    bar.update(size)


def record_progress(description: str, file: IO[str] | None = None) -> tqdm:
    """A record-counting bar for a stream whose size is not known ahead (a source being read)."""
    return tqdm(desc=description, unit=" records", unit_scale=True, disable=None, delay=SHOW_AFTER_SECONDS,
                mininterval=0.5, leave=False, file=file)
