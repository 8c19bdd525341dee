"""Progress of a long stage (records done, MB/s, ETA) with tqdm, shown only on a terminal (not in CI logs or `dvc exp`
queue workers) and only for runs longer than SHOW_AFTER_SECONDS."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Protocol, TypeVar

from tqdm import tqdm

SHOW_AFTER_SECONDS = 2.0


def line_progress(paths: Iterable[Path], description: str, file: IO[str] | None = None) -> tqdm:
    """A bar over the total bytes of ``paths``, shown only if ``file`` (default stderr) is a terminal."""
    total = sum(path.stat().st_size for path in paths)
    return tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1000, disable=None,
                delay=SHOW_AFTER_SECONDS, mininterval=0.5, leave=False, file=file,
                bar_format="{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt}B{postfix} [{rate_fmt}, ETA {remaining}]")


class Counted(Protocol):
    def __len__(self) -> int: ...  # records

    @property
    def nbytes(self) -> int: ...  # the bytes they take in the file being read


Chunk = TypeVar("Chunk", bound=Counted)


def counted_chunks(chunks: Iterable[Chunk], bar: tqdm) -> Iterator[Chunk]:
    """``chunks``, advancing ``bar`` by their bytes and showing the record count."""
    count = 0
    for chunk in chunks:
        count += len(chunk)
        bar.update(chunk.nbytes)
        bar.set_postfix_str(f"{count:,} records", refresh=False)
        yield chunk


def record_progress(description: str, file: IO[str] | None = None) -> tqdm:
    """A record-counting bar, for a stream whose size is not known ahead."""
    return tqdm(desc=description, unit=" records", unit_scale=True, disable=None, delay=SHOW_AFTER_SECONDS,
                mininterval=0.5, leave=False, file=file)
