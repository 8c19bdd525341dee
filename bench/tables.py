"""The machine a run happened on, number formats and Markdown tables."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
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
    """Whether `cp --reflink=always` of a small file works inside ``work`` (it fails where the filesystem has no
    reflinks), so whether DVC's reflink cache type can be used there."""
    original, clone = work / ".reflink-probe", work / ".reflink-probe-clone"
    original.write_bytes(b"reflink probe\n")
    try:
        return subprocess.run(["cp", "--reflink=always", str(original), str(clone)],
                              check=False, capture_output=True, timeout=60).returncode == 0
    finally:
        original.unlink()
        clone.unlink(missing_ok=True)


DVC_DEFAULT_CACHE_TYPE = "reflink,copy"
LINK_VERBS = {"reflink": "reflinks outputs into its cache (no data copied)",
              "copy": "copies every output into its cache",
              "hardlink": "hardlinks outputs into its cache",
              "symlink": "symlinks outputs into its cache"}


def cache_type(repo: Path, env: dict[str, str]) -> str:
    """`dvc config cache.type` of a project copy ("" when unset)."""
    return run_checked(dvc("config", "cache.type"), repo, env, timeout=600).strip()


def link_used(types: str, reflinks: bool) -> str:
    """What DVC does with an output under cache.type ``types``: the first link type of the list that works here."""
    for kind in (part.strip() for part in (types or DVC_DEFAULT_CACHE_TYPE).split(",")):
        if kind != "reflink" or reflinks:
            return kind
    return "copy"


def shared_extents(path: Path) -> bool | None:
    """Whether ``path`` has extents shared with another file (`filefrag -v` flags "shared": reflinked); None
    when filefrag cannot tell (not installed, or a filesystem without FIEMAP)."""
    try:
        listing = subprocess.run(["filefrag", "-v", str(path)], check=False, capture_output=True, text=True,
                                 timeout=60)
    except OSError:
        return None
    if listing.returncode != 0:
        return None
    extents = [line for line in listing.stdout.splitlines() if re.match(r"\s*\d+:", line)]
    return any("shared" in line.rsplit(None, 1)[-1] for line in extents) if extents else None


def machine(work: Path, repos: Sequence[tuple[str, Path]], env: dict[str, str], checked: str = "") -> list[str]:
    """Markdown bullet lines describing the machine, the versions and the work directory's filesystem: its type,
    whether reflinks work there, and so what DVC's cache.type does with outputs (of each project copy in
    ``repos``, (label, repository); ``checked``: what a look at an output after a repro showed)."""
    memory_kib = int(_proc_field("/proc/meminfo", "MemTotal").split()[0])
    reflinks = reflinks_supported(work)
    kinds = [(label, cache_type(repo, env)) for label, repo in repos]
    if len({kind for _, kind in kinds}) == 1:
        kinds = [("every revision" if len(kinds) > 1 else "", kinds[0][1])]
    cache_lines = []
    for number, (label, kind) in enumerate(kinds, 1):
        used = link_used(kind, reflinks)
        cache_lines.append(f"- `cache.type` = `{kind or '(unset)'}` (.dvc/config{' of ' + label if label else ''}): "
                           f"here DVC {LINK_VERBS.get(used, 'uses ' + used)}"
                           + (checked if number == len(kinds) else ""))
    reflink_note = ("yes (`cp --reflink=always` of a small file works there)" if reflinks else
                    "no (`cp --reflink=always` of a small file fails there)")
    return [
        (f"- CPU: {_proc_field('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores; "
         f"memory {memory(memory_kib)}"),
        f"- OS: {_os_name()}; Python {platform.python_version()}",
        f"- dvc {package_version('dvc')}, pandas {package_version('pandas')}, datasets {package_version('datasets')}",
        f"- work directory {work}: filesystem {filesystem(work)}; reflinks: {reflink_note}",
        *cache_lines,
    ]
