"""Rebuild (issue 11): equal to catch-up event by event, resumable after kill -9 by running it
again, indexes built after the bulk load, older view layouts rebuilt rather than a crash."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import time
from dataclasses import replace
from typing import Any

import pytest

from bench import synth
from domain.codec import decode_entry
from domain.demo import demo_patients, record_demo
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger
from projections.views_schema import INDEXES, REBUILD_NAME
from tests.integration.test_projector import BOUND, CLI, ROOT, _dump, _env, _record, _wait


def _indexes(system: OncoLedger) -> set[str]:
    with system.views.db.transaction() as cur:
        if system.views.db.is_postgres:
            cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        else:
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {str(r[0]) for r in cur.fetchall() if str(r[0]).startswith("ol_")}


def _wanted() -> set[str]:
    return {s.split(" EXISTS ")[1].split(" ")[0] for s in INDEXES}


def test_rebuild_equals_catch_up_event_by_event(store: StoreConfig) -> None:
    with OncoLedger(store, project_inline=False) as system:
        record_demo(system.ledger, actor="demo")
        _record(system, range(3), 5)
        draw = system.history("PRJ-0000")[1]
        system.amend(
            "PRJ-0000",
            draw.event_id,
            {"type": "ctc_count", "occurred": "2015-01-01", "count": 9},
            reason="late correction",
            actor="a",
            source="cli",
        )
        other = system.history("PRJ-0001")[2]
        system.retract("PRJ-0001", other.event_id, reason="x", actor="a", source="cli")
        # when the views are caught up one event per batch
        while system.views.catch_up(batch=1):
            pass
        assert system.views.status()["lag"] == 0
        one_by_one = _dump(system.views)
        # then a rebuild (large batches, indexes after the load) gives the same tables
        system.views.rebuild()
        assert _dump(system.views) == one_by_one
        assert _wanted() <= _indexes(system)
        # and so does one whose rows two worker processes compute
        system.views.rebuild(workers=2, batch=7)
        assert _dump(system.views) == one_by_one
        assert _wanted() <= _indexes(system)


def _varied(system: OncoLedger, patients: int) -> None:
    """Synthetic courses (amendments, retractions, deaths) recorded a few events at a time
    round-robin, so each patient's events are spread over the store among the others', then
    late entries (earlier dates, partial ones) for some of them, and one patient erased."""
    rng = random.Random(11)
    pending = [(pid, list(bodies)) for pid, bodies in synth.cohort(patients, 14, seed=5)]
    while pending:
        for pid, bodies in pending:
            chunk = bodies[: rng.randint(1, 3)]
            del bodies[: len(chunk)]
            system.ledger.append(pid, [decode_entry(b) for b in chunk], actor="a", source="import")
        pending = [(pid, bodies) for pid, bodies in pending if bodies]
    for i in range(0, patients, 3):
        late: list[dict[str, Any]] = [
            {"type": "ctc_count", "occurred": "2001-05", "count": i % 7},
            {"type": "ctc_count", "occurred": f"2001-0{1 + i % 4}-1{i % 9}", "count": 3},
        ]
        system.append(synth.patient_id(i), late, actor="b", source="cli")
    system.erase(synth.patient_id(1), actor="dpo", reason="request", channel="cli")


def test_rebuild_equals_catch_up_on_interleaved_patients(store: StoreConfig) -> None:
    keyed = replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode())
    with OncoLedger(keyed, project_inline=False) as system:
        _varied(system, 18)
        # when the views are caught up a few events per batch
        while system.views.catch_up(batch=3):
            pass
        incremental = _dump(system.views)
        assert len(incremental["ol_patients"]) == 17  # one erased
        # then a rebuild in this process, and one beside worker processes (each patient's
        # events in many batches), give the same rows
        system.views.rebuild(workers=0)
        assert _dump(system.views) == incremental
        system.views.rebuild(workers=2, batch=13)
        assert _dump(system.views) == incremental
        system.views.rebuild(workers=1, batch=40)
        assert _dump(system.views) == incremental


def test_a_killed_rebuild_resumes_when_run_again(store: StoreConfig) -> None:
    # given views current over 3,000 events
    with OncoLedger(store) as system:
        total = _record(system, range(150), 19)
        clean = _dump(system.views)
    # when `projections rebuild` is killed (SIGKILL) after committing part of its batches
    with OncoLedger(store, project_inline=False) as watcher:
        rebuild = subprocess.Popen(
            [
                *CLI,
                "--db",
                store.sqlite_path or "unused.db",
                "projections",
                "rebuild",
                "--batch",
                "50",
            ],
            cwd=ROOT,
            env=_env(store),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def partway() -> bool:
            if rebuild.poll() is not None:
                return True
            try:
                return 0 < watcher.views.position() < total
            except Exception:  # the tables are being dropped and made again
                return False

        try:
            _wait(partway)
            rebuild.kill()
        finally:
            rebuild.wait()
        committed = watcher.views.position()
        with watcher.views.db.transaction() as cur:
            cur.execute("SELECT 1 FROM ol_tracking WHERE name = ?", (REBUILD_NAME,))
            unfinished = cur.fetchone() is not None
    # then running it again applies exactly the rest (it resumes, it does not start over)
    again = subprocess.run(
        [*CLI, "--db", store.sqlite_path or "unused.db", "projections", "rebuild", "--json"],
        cwd=ROOT,
        env=_env(store),
        capture_output=True,
        timeout=BOUND,
        check=True,
    )
    report: dict[str, Any] = json.loads(again.stdout)
    assert unfinished and 0 < committed < total
    assert report["applied"] == total - committed
    assert report["position"] == total
    # and the views are what a clean build gives, with every index
    with OncoLedger(store) as system:
        assert _dump(system.views) == clean
        assert _wanted() <= _indexes(system)
        with system.views.db.transaction() as cur:
            cur.execute("SELECT 1 FROM ol_tracking WHERE name = ?", (REBUILD_NAME,))
            assert cur.fetchone() is None


WORKERS_2 = ("--batch", "50", "--workers", "2")
WORKERS_1 = ("--json", "--workers", "1")


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def _settled(system: OncoLedger) -> int:
    """The views' position once it stays put: a COMMIT the killed process had sent may still
    be finishing on the PostgreSQL server after the process is gone."""
    seen = system.views.position()
    while True:
        time.sleep(0.5)
        now = system.views.position()
        if now == seen:
            return now
        seen = now


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to find the workers")
def test_a_killed_rebuild_with_workers_resumes_and_leaves_no_worker(store: StoreConfig) -> None:
    # given views current over 3,000 events
    with OncoLedger(store) as system:
        total = _record(system, range(150), 19)
        clean = _dump(system.views)
    # when `projections rebuild --workers 2` is killed (SIGKILL) after committing part of it
    with OncoLedger(store, project_inline=False) as watcher:
        rebuild = subprocess.Popen(
            [*CLI, "--db", store.sqlite_path or "unused.db", "projections", "rebuild", *WORKERS_2],
            cwd=ROOT,
            env=_env(store),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        workers: set[int] = set()

        def partway() -> bool:
            if rebuild.poll() is not None:
                return True
            workers.update(_children(rebuild.pid))
            try:
                return 0 < watcher.views.position() < total
            except Exception:  # the tables are being dropped and made again
                return False

        try:
            _wait(partway)
            workers.update(_children(rebuild.pid))
            rebuild.kill()
        finally:
            rebuild.wait()
        committed = _settled(watcher)
    assert 0 < committed < total
    # then its workers stop by themselves (they see their parent gone)
    assert workers
    _wait(lambda: not any(_alive(pid) for pid in workers))
    # and running it again applies exactly the rest, giving what a clean build gives
    again = subprocess.run(
        [*CLI, "--db", store.sqlite_path or "unused.db", "projections", "rebuild", *WORKERS_1],
        cwd=ROOT,
        env=_env(store),
        capture_output=True,
        timeout=BOUND,
        check=True,
    )
    report: dict[str, Any] = json.loads(again.stdout)
    assert report["applied"] == total - committed
    assert report["position"] == total
    with OncoLedger(store) as system:
        assert _dump(system.views) == clean
        assert _wanted() <= _indexes(system)


def test_views_of_an_older_layout_are_rebuilt_not_a_crash(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        record_demo(system.ledger, actor="demo")
        system.views.catch_up()
        current = _dump(system.views)
        # given views of the layout before this one (bodies in ol_events, ol_docs documents)
        with system.views.db.transaction(write=True) as cur:
            for table in ("ol_events", "ol_tracking", "ol_patients", "ol_survival"):
                cur.execute(f"DROP TABLE {table}")
            cur.execute("CREATE TABLE ol_tracking (name TEXT PRIMARY KEY, position BIGINT)")
            cur.execute("INSERT INTO ol_tracking VALUES ('views', 62)")
            cur.execute(
                "CREATE TABLE ol_events (position BIGINT PRIMARY KEY, patient_id TEXT, body TEXT)"
            )
            cur.execute("CREATE TABLE ol_docs (patient_id TEXT, view TEXT, doc TEXT)")
    # when the store is opened, then the views are dropped and built again from the events
    with OncoLedger(store) as system:
        assert system.views.position() == 0
        system.views.catch_up()
        assert _dump(system.views) == current
        with system.views.db.transaction() as cur:
            if system.views.db.is_postgres:
                cur.execute("SELECT to_regclass('ol_docs') IS NOT NULL")
                assert cur.fetchone()[0] is False
            else:
                cur.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ol_docs'")
                assert cur.fetchone()[0] == 0
        patient_id = demo_patients()[0][0]
        assert system.read(patient_id, "timeline") is not None
