"""Run one command; print its wall time and the peak RSS of its process tree as one JSON line.

Usage: python3 -I -S measure.py TIMEOUT_SECONDS STDOUT_FILE STDERR_FILE -- COMMAND [ARG...]

The peak is resource.getrusage(RUSAGE_CHILDREN).ru_maxrss read after the command ends: the largest
resident set of any process of the tree that was waited for (the command and, when it waits for its
own children as DVC does for stage commands, theirs). Linux carries a parent's peak into a child it
starts, so the figure is at least this wrapper's own few MiB (hence -I -S: no site, no probe).
A process and the workers it forks (same command line) are one program: every SAMPLE_SECONDS the
wrapper sums their proportional set sizes (PSS: a page shared by k processes counts 1/k in each), and
reports each such group's peak sum, and most processes seen at once, under its first process's pid.
On timeout, Ctrl-C or SIGTERM the command's whole process group is killed.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

SAMPLE_SECONDS = 0.1


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:  # the process has exited
        return ""


def group_pss_kib(root: int) -> dict[int, tuple[int, int]]:
    """Summed PSS (KiB) and process count of each program in ``root``'s process tree, keyed by the pid of its
    first process."""
    parents, commands = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _read(f"/proc/{entry.name}/stat")
            if stat:
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    for pid in tree:
        commands[pid] = _read(f"/proc/{pid}/cmdline")
    sums: dict[int, tuple[int, int]] = {}
    for pid in tree:
        first = pid
        while parents.get(first) in tree and commands.get(parents[first]) == commands[first]:
            first = parents[first]
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                kib, processes = sums.get(first, (0, 0))
                sums[first] = kib + int(line.split()[1]), processes + 1
    return sums


def sample_peaks(root: int, peaks: dict[int, int], processes: dict[int, int], done: threading.Event) -> None:
    while not done.wait(SAMPLE_SECONDS):
        for pid, (kib, count) in group_pss_kib(root).items():
            peaks[pid] = max(peaks.get(pid, 0), kib)
            processes[pid] = max(processes.get(pid, 0), count)


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
        peaks: dict[int, int] = {}
        processes: dict[int, int] = {}
        done = threading.Event()
        sampler = threading.Thread(target=sample_peaks, args=(process.pid, peaks, processes, done), daemon=True)
        sampler.start()
        try:
            returncode: int | None = process.wait(float(timeout))
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            stop_group(process)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"wall": wall, "peak_kib": peak_kib, "returncode": returncode, "pid": process.pid,
                      "group_pss_kib": peaks, "group_processes": processes}))


if __name__ == "__main__":
    main(sys.argv[1:])
