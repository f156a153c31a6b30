"""The machine a benchmark ran on: CPU, platform, load, package versions and the git revision.

Stdlib only; the report records these beside every figure, since a figure
means little without the machine and the code that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def git_revision(root: Path) -> dict:
    """The checked-out commit and whether the work tree has uncommitted changes (None without git)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root, capture_output=True, text=True, check=True, timeout=10,
            ).stdout.strip()
        )
        return {"revision": rev, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: another busy process shows up here."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def package_versions(learning: bool = False) -> dict:
    out = {}
    names = ("painloop", "numpy", "numba", "gymnasium", "scipy")
    for name in names + (("torch", "stable_baselines3", "sb3_contrib") if learning else ()):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
