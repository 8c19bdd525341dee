"""Loaded by every Python process of a measured command (the benchmark puts a copy on PYTHONPATH).

With BENCH_PROBE_DIR set, each process writes PID.json there when it exits: its argv, the module it
ran with `python3 -m` (None otherwise), when it started (epoch seconds), its wall seconds and peak
resident memory in KiB. That is how the benchmark tells the pipeline's stage processes
(`python3 -m src.…`) from DVC itself without knowing the stages. The peak is VmHWM of
/proc/self/status, the high-water mark of this program alone: ru_maxrss would also carry the peak of
the parent that started it (Linux keeps the old memory's peak across exec, and a vfork child's old
memory is its parent's).
With BENCH_PROFILE set too, the process also profiles its main thread with cProfile into PID.prof.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path


def _high_water_kib() -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _install(directory: Path, profile: bool) -> None:
    started, started_at = time.perf_counter(), time.time()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    def record() -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(directory / f"{os.getpid()}.prof")
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        (directory / f"{os.getpid()}.json").write_text(json.dumps({
            "argv": sys.argv,
            "module": getattr(spec, "name", None),
            "started": started_at,
            "wall": time.perf_counter() - started,
            "peak_kib": _high_water_kib(),
        }), encoding="utf-8")

    atexit.register(record)


if "BENCH_PROBE_DIR" in os.environ:
    _install(Path(os.environ["BENCH_PROBE_DIR"]), bool(os.environ.get("BENCH_PROFILE")))
