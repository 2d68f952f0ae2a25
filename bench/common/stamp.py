"""The stamp of a benchmark results file: when, on what machine, with which Python and Puff.

    from stamp import stamp            # with bench/common on sys.path
    stamp(repo_root, packages=["puff", "gevent"], reproduce="make bench-runtime")
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from typing import Dict, Iterable, Optional


def _git(root: str, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> list:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return []


def versions(packages: Iterable[str]) -> Dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def bench_env() -> Dict[str, str]:
    """The BENCH_* settings of this run."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")}


def command(reproduce: Optional[str] = None) -> str:
    """The command that reproduces the run: `reproduce` (or this interpreter and argv), with the
    BENCH_* settings in front."""
    env = [f"{k}={shlex.quote(v)}" for k, v in bench_env().items()]
    cmd = reproduce or " ".join([shlex.quote(os.path.relpath(sys.executable)), *map(shlex.quote, sys.argv)])
    return " ".join(env + [cmd])


def stamp(root: str, packages: Iterable[str] = ("puff",), reproduce: Optional[str] = None) -> Dict:
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "puff_commit": _git(root, "rev-parse", "HEAD"),
        "puff_tree_dirty": bool(dirty and dirty != "unknown"),
        "command": command(reproduce),
        "settings": bench_env(),
        "loadavg_at_start": loadavg(),
        "versions": versions(packages),
    }
