"""Stage params: check the whole of params.yaml, printing nothing when it is valid.

Usage: python3 -m src.params PARAMS
DVC reruns it on any change to params.yaml, so that no edit leaves the pipeline "up to date" with params it refuses.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.core.config import load_params
from src.core.errors import expect_args, run_cli


def main(argv: Sequence[str]) -> None:
    (params_path,) = expect_args(argv, ("PARAMS",), "src.params")
    load_params(Path(params_path))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
