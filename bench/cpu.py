"""CPU time of running processes, read from /proc: the server's workers, a projector, and the
PostgreSQL backends serving them (found by the `application_name` their connections carry)."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (None once it is gone or unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state(0) ppid(1) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (uvicorn's worker processes, say)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


Groups = dict[str, list[int]]


def snapshot(pids: Groups) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process of each named group."""
    return {name: {p: seconds(p) or 0.0 for p in group} for name, group in pids.items()}


def spent(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds each group spent between the snapshots; a process that appeared in between
    (a new pooled connection's backend, say) counts from its start."""
    return {
        name: sum(value - before.get(name, {}).get(pid, 0.0) for pid, value in group.items())
        for name, group in after.items()
    }


def backends(url: str, application_name: str) -> list[int]:
    """Pids of the PostgreSQL backends whose sessions say `application_name`."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return sorted(int(r[0]) for r in rows)


def describe(cpu: dict[str, float], wall: float) -> str:
    """`server 3.1 s (1.6 cores)`-style text, largest first."""
    parts = [
        f"{name} {value:.1f} s ({value / wall:.2f} cores)"
        for name, value in sorted(cpu.items(), key=lambda kv: -kv[1])
        if value > 0
    ]
    return "CPU: " + ", ".join(parts) if parts else "CPU: not readable"
