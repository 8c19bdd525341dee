"""User-facing errors, and the CLI wrapper every stage script uses."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

# The characters str.splitlines() breaks on, escaped so that an error is always one line on stderr.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class DatasetError(Exception):
    """Bad input or params: reported as one line, exit status 1, no traceback."""


def run_cli(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None) -> int:
    """Run a stage's main(argv). A DatasetError, or a fault of the machine (OSError) that no stage turned into one,
    is printed as one line, and the exit status is 1."""
    try:
        main(sys.argv[1:] if argv is None else list(argv))
        return 0
    except DatasetError as error:
        message = str(error)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        message = f"{where}{error.strerror or error}; check the file and the device, then run again"
    print(f"error: {message.translate(_LINE_BREAKS)}", file=sys.stderr)
    return 1


def expect_args(argv: Sequence[str], names: Sequence[str], program: str) -> list[str]:
    if len(argv) != len(names):
        raise DatasetError(f"usage: python3 -m {program} {' '.join(names)}")
    return list(argv)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the stages' convention: a usage mistake is one `error:` line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        raise DatasetError(f"{self.prog}: {message} (see --help)")
