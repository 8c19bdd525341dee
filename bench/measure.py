"""Run one command; print its wall time and the peak RSS of its process tree as one JSON line.

Usage: python3 -I -S measure.py TIMEOUT_SECONDS STDOUT_FILE STDERR_FILE -- COMMAND [ARG...]

The peak is resource.getrusage(RUSAGE_CHILDREN).ru_maxrss read after the command ends: the largest
resident set of any process of the tree that was waited for (the command and, when it waits for its
own children as DVC does for stage commands, theirs). Linux carries a parent's peak into a child it
starts, so the figure is at least this wrapper's own few MiB (hence -I -S: no site, no probe).
On timeout, Ctrl-C or SIGTERM the command's whole process group is killed.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the command's process group if the command is still running (timeout, Ctrl-C)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv: Sequence[str]) -> None:
    timeout, stdout_file, stderr_file, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through stop_group below
    with open(stdout_file, "wb") as stdout, open(stderr_file, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            returncode: int | None = process.wait(float(timeout))
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            stop_group(process)
        wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"wall": wall, "peak_kib": peak_kib, "returncode": returncode}))


if __name__ == "__main__":
    main(sys.argv[1:])
