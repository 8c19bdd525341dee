"""User-facing errors and the thin CLI wrapper every stage script uses."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

# Characters str.splitlines() breaks on: escaped, so that an error is always one line on stderr.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class DatasetError(Exception):
    """Bad input or params: reported as one line, exit status 1, no traceback."""


def run_cli(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None) -> int:
    """Run a stage's main(argv); turn DatasetError, and any fault of the machine (OSError) that no stage turned into
    one, into a one-line message and exit 1."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        main(args)
    except DatasetError as error:
        return _fail(str(error))
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror or error}; check the file and the device, then run again")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message.translate(_LINE_BREAKS)}", file=sys.stderr)
    return 1


def expect_args(argv: Sequence[str], names: Sequence[str], program: str) -> list[str]:
    """Check the positional argument count; the usage line names them."""
    if len(argv) != len(names):
        usage = " ".join(names)
        raise DatasetError(f"usage: python3 -m {program} {usage}")
    return list(argv)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the stages' convention: a usage mistake is one `error:` line and exit status 1."""

    def error(self, message: str) -> NoReturn:
        raise DatasetError(f"{self.prog}: {message} (see --help)")
