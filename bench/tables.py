"""The machine a run happened on, number formats and Markdown tables."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from workspace import dvc, run_checked

KIB_PER_MIB = 1024
KIB_PER_GIB = 1024 * 1024


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def memory(kib: int) -> str:
    return f"{kib / KIB_PER_GIB:.2f} GiB" if kib >= KIB_PER_GIB else f"{kib / KIB_PER_MIB:.0f} MiB"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}×" if base > 0 else "n/a"


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _proc_field(path: str, key: str) -> str:
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return "unknown"


def _os_name() -> str:
    release = Path("/etc/os-release")
    if release.is_file():
        for line in release.read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
                return f"{name}, Linux {platform.release()}"
    return f"{platform.system()} {platform.release()}"


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def filesystem(path: Path) -> str:
    listing = subprocess.run(["df", "--output=fstype", str(path)], check=False, capture_output=True, text=True,
                             timeout=60)
    lines = listing.stdout.split()
    return lines[-1] if listing.returncode == 0 and len(lines) > 1 else "unknown"


def reflinks_supported(work: Path) -> bool:
    """Whether `cp --reflink=always` works inside ``work`` (so DVC's reflink cache type can be used)."""
    original, clone = work / ".reflink-probe", work / ".reflink-probe-clone"
    original.write_bytes(b"reflink probe\n")
    try:
        return subprocess.run(["cp", "--reflink=always", str(original), str(clone)],
                              check=False, capture_output=True, timeout=60).returncode == 0
    finally:
        original.unlink()
        clone.unlink(missing_ok=True)


def machine(work: Path, repo: Path, env: dict[str, str]) -> list[str]:
    """Markdown bullet lines describing the machine, the versions and the work directory's filesystem."""
    memory_kib = int(_proc_field("/proc/meminfo", "MemTotal").split()[0])
    cache_type = run_checked(dvc("config", "cache.type"), repo, env, timeout=600).strip() or "(unset)"
    reflinks = reflinks_supported(work)
    cache_note = ("reflinks work here, so DVC links outputs into its cache without copying" if reflinks and
                  "reflink" in cache_type else "no reflinks here, so DVC copies every output into its cache")
    return [
        (f"- CPU: {_proc_field('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores; "
         f"memory {memory(memory_kib)}"),
        f"- OS: {_os_name()}; Python {platform.python_version()}",
        f"- dvc {package_version('dvc')}, pandas {package_version('pandas')}, datasets {package_version('datasets')}",
        (f"- work directory {work}: {filesystem(work)}; `cache.type` = `{cache_type}` "
         f"(.dvc/config): {cache_note}"),
    ]
