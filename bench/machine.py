"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("eventsourcing", "msgspec", "litestar", "uvicorn", "httpx")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_revision(root: Path) -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = sorted({line[3:] for line in dirty if not line[3:].startswith("bench/")})
    if not changed:
        return rev
    return f"{rev}, with uncommitted changes to {', '.join(changed)}"


def describe(root: Path) -> dict[str, str]:
    mem = memory_gib()
    return {
        "CPU": cpu_model(),
        "Cores": str(os.cpu_count()),
        "Memory": f"{mem:.1f} GiB" if mem else "unknown",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "SQLite": sqlite3.sqlite_version,
        "Packages": ", ".join(f"{k} {v}" for k, v in versions().items()),
        "Commit": git_revision(root),
    }
