"""Small helpers shared by the orchestrator and the workload processes."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from domain.ledger.application import StoreConfig
from domain.ledger.key_file import create_key_file


def now() -> float:
    return time.perf_counter()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by `fn()`, and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def rss_kib() -> int:
    """Current resident set size of this process, in KiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def max_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def config(path: str) -> StoreConfig:
    """A SQLite store at `path`, ignoring any ONCOLEDGER_* environment of the caller.

    Encrypted at rest, as the product makes a new store by default: a store not made yet gets a
    master key file `<path>.key`, and a store that has one opens with it."""
    made, _ = create_key_file(
        StoreConfig(sqlite_path=path, database_url=None, schema=None, cipher_key=None)
    )
    return made


def store_config(a: dict[str, Any]) -> StoreConfig:
    """The store a workload's arguments name: `database_url` (+ `schema`, `cipher_key`) for
    PostgreSQL, else the SQLite file `path`."""
    if a.get("database_url"):
        return StoreConfig(
            sqlite_path=None,
            database_url=a["database_url"],
            schema=a.get("schema"),
            cipher_key=a.get("cipher_key"),
        )
    return config(a["path"])
