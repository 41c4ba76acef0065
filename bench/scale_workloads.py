"""Workloads of the restart and disk rows (`bench.scale_rows`), each run by `bench.worker` in a
process of its own, like those of `bench.workloads`."""

from __future__ import annotations

import os
import random
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from bench import synth
from bench.common import config, now
from domain.ledger.db import views_path
from projections.root import OncoLedger

Result = dict[str, Any]
ACTOR = "bench"


def _result(samples: dict[str, list[float]], **info: Any) -> Result:
    return {"samples": samples, "info": info}


def first_write(a: dict[str, Any]) -> Result:
    """In a new process: a new `OncoLedger` (as a restarted server opens it), then one append
    to `patient_id`, the way the API appends (answered once stored; no projection inline)."""
    rng = random.Random(uuid.uuid4().int)
    body = synth.follow_on(rng, a["patient_id"])
    start = now()
    ol = OncoLedger(config(a["path"]), project_inline=False)
    opened = now()
    ol.append(a["patient_id"], [body], actor=ACTOR, source="api")
    done = now()
    ol.close()
    return _result({"open_ms": [(opened - start) * 1000], "append_ms": [(done - opened) * 1000]})


def disk_sizes(a: dict[str, Any]) -> Result:
    """Bytes on disk of the event store and of its views, each after a WAL checkpoint."""
    sizes: dict[str, dict[str, int]] = {}
    for name, path in (("events", a["path"]), ("views", views_path(config(a["path"])))):
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        conn.close()
        wal = path + "-wal"
        sizes[name] = {
            "file": os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0),
            "used": (pages - free) * page,
        }
    return _result({}, sizes=sizes)


WORKLOADS: dict[str, Callable[[dict[str, Any]], Result]] = {
    "first_write": first_write,
    "disk_sizes": disk_sizes,
}
