"""The projector off the request path (issue 11): writes answered before the views move,
per-patient reads current anyway, the cohort list saying how far it lags, each event applied
once; projector processes on one store (two at once, one killed with SIGKILL mid-backlog)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from api.app import create_app
from domain.ledger.application import StoreConfig
from projections import readmodels
from projections.projector import Projector
from projections.root import OncoLedger
from projections.views import Views
from tests.helpers import V1, start_api

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "cli.main")
BOUND = 300.0  # seconds: a hung projector fails the test instead of hanging the suite


def _dump(views: Views) -> dict[str, list[Any]]:
    """Every stored row of the views, in a stable order."""
    out: dict[str, list[Any]] = {}
    with views.db.transaction() as cur:
        for table, order in (
            ("ol_events", "position"),
            ("ol_patients", "patient_id"),
            ("ol_survival", "patient_id"),
        ):
            cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
            out[table] = [tuple(row) for row in cur.fetchall()]
    return out


def _record(system: OncoLedger, patients: range, draws: int) -> int:
    """Register each patient and record `draws` CTC counts; return the events stored."""
    stored = 0
    for p in patients:
        pid = f"PRJ-{p:04d}"
        system.register(
            pid,
            {"occurred": "2016-04-26", "sex": "female", "birth_year": 1950 + p % 40},
            actor="nurse.a",
            source="cli",
        )
        bodies: list[dict[str, Any]] = [
            {"type": "ctc_count", "occurred": f"2016-{1 + d % 12:02d}-{1 + d % 28:02d}", "count": d}
            for d in range(draws)
        ]
        system.append(pid, bodies, actor="nurse.a", source="cli")
        stored += 1 + draws
    return stored


def _equals_clean_rebuild(config: StoreConfig) -> None:
    with OncoLedger(config) as system:
        incremental = _dump(system.views)
        assert system.views.status()["lag"] == 0
        system.views.rebuild()
        assert _dump(system.views) == incremental


def _env(config: StoreConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
    for name, value in (
        ("ONCOLEDGER_DATABASE_URL", config.database_url),
        ("ONCOLEDGER_DATABASE_SCHEMA", config.schema),
    ):
        if value:
            env[name] = value
    return env


@pytest.fixture
def projectors(store: StoreConfig) -> Iterator[Any]:
    """Start `oncoledger projections run` processes over the store; each is stopped by its pid."""
    started: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = tempfile.NamedTemporaryFile()  # noqa: SIM115 - kept open while the process runs
        logs.append(log)
        process = subprocess.Popen(
            [*CLI, "--db", store.sqlite_path or "unused.db", "projections", "run", "--json", *args],
            cwd=ROOT,
            env=_env(store),
            stdout=subprocess.PIPE,
            stderr=log,
        )
        started.append(process)
        if "--once" not in args:  # until it says it runs (its SIGTERM handler is in place)
            _wait(lambda: b"projector running" in Path(log.name).read_bytes())
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    for log in logs:
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=BOUND)
    assert process.returncode == 0
    report: dict[str, Any] = json.loads(out)
    return report


def _wait(condition: Any) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "the projector did not get there"
        time.sleep(0.05)


def test_a_write_is_answered_before_the_views_move_and_reads_stay_current(
    store: StoreConfig,
) -> None:
    # given a server whose projection is left to a separate worker (serve --no-projector)
    with TestClient(create_app(store, projector=False)) as client:
        ledger: OncoLedger = client.app.state.ledger
        headers = {"Authorization": f"Bearer {ledger.tokens.create('a', 'admin')}"}
        body = {"patient_id": "P1", "sex": "male", "birth_year": 1940, "occurred": "2016-04-26"}
        assert client.post(f"{V1}/patients", json=body, headers=headers).status_code == 201
        ctc = {"type": "ctc_count", "occurred": "2016-06-01", "count": 7}
        created = client.post(f"{V1}/patients/P1/events", json=ctc, headers=headers)
        assert created.status_code == 201
        # then the request did not project: the views have applied nothing
        status = client.get(f"{V1}/projections/status", headers=headers).json()
        assert status == {"position": 0, "head": 2, "lag": 2, "projector": False}
        # but every per-patient read reflects the write (derived from the stream)
        draws = client.get(f"{V1}/patients/P1/ctc", headers=headers).json()["draws"]
        assert [d["event_id"] for d in draws] == [created.json()["event_id"]]
        row = client.get(f"{V1}/patients/P1", headers=headers).json()
        assert row["events"] == 2 and row["ctc_latest_per_7_5_ml"] == 7
        # and the cohort list answers from the views, saying how far behind they are
        page = client.get(f"{V1}/patients", headers=headers).json()
        assert page["patients"] == [] and page["position"] == 0 and page["lag"] == 2
        # when a projector runs
        assert Projector(ledger.views).step() == 2
        # then the list is current and says so
        page = client.get(f"{V1}/patients", headers=headers).json()
        assert [p["patient_id"] for p in page["patients"]] == ["P1"]
        assert (page["position"], page["lag"]) == (2, 0)
        assert client.get(f"{V1}/patients/P1", headers=headers).json() == row


def test_the_embedded_projector_brings_the_cohort_list_current(store: StoreConfig) -> None:
    for api in start_api(store, base=V1):
        assert api.ledger.projector is not None and api.ledger.projector.running
        api.register("P1")
        api.register("P2")
        page = api.get("/patients").json()
        assert [p["patient_id"] for p in page["patients"]] == ["P1", "P2"]
        assert page["lag"] == 0 and page["position"] == 2
        status = api.get("/projections/status", role="reader").json()
        assert status == {"position": 2, "head": 2, "lag": 0, "projector": True}


def test_the_projector_skips_a_stream_it_cannot_read(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two patients, one of whose payloads cannot be decrypted (erased, say)
    with OncoLedger(store, project_inline=False) as system:
        _record(system, range(2), 3)
        plaintext = system.ledger.plaintext

        def unreadable(stored: Any) -> bytes:
            if str(stored.originator_id) == "PRJ-0000":
                raise ValueError("no key")
            return plaintext(stored)

        monkeypatch.setattr(system.ledger, "plaintext", unreadable)
        # when the projector runs, then it does not stall: the other patient is projected
        assert Projector(system.views).step() == 8
        assert system.views.status()["lag"] == 0
        assert system.views.patient("PRJ-0001").events == 4
        assert system.views.patients().patients[0].patient_id == "PRJ-0001"
        # and forget removes every row of a patient, idempotently, but for the change audit's
        # clear envelopes (issue 12: auditors still see who recorded which type when)
        system.views.forget("PRJ-0001")
        system.views.forget("PRJ-0001")
        dump = _dump(system.views)
        audit = [row for row in dump.pop("ol_events") if "PRJ-0001" in repr(row)]
        assert all("PRJ-0001" not in repr(rows) for rows in dump.values()), (
            "a row of the forgotten patient is left"
        )
        with system.views.db.transaction() as cur:
            cur.execute("SELECT reason FROM ol_events WHERE patient_id = ?", ("PRJ-0001",))
            assert set(cur.fetchall()) == {(None,)}, "clinical content left in the audit"
        assert len(audit) == 4


def test_two_projector_processes_apply_each_event_exactly_once(
    store: StoreConfig, projectors: Any
) -> None:
    # given two projector processes over one store, while events are being written
    first, second = projectors("--poll", "0.02"), projectors("--poll", "0.02")
    with OncoLedger(store, project_inline=False) as system:
        total = _record(system, range(40), 9)
        # when both have caught up
        _wait(lambda: system.views.status()["lag"] == 0)
        assert system.views.head() == total == 400
    reports = [_stop(first), _stop(second)]
    # then between them they applied every event once: nothing lost, nothing doubled
    assert sum(r["applied"] for r in reports) == total
    # and the views equal a clean rebuild
    _equals_clean_rebuild(store)


def test_a_projector_killed_mid_backlog_resumes_where_it_committed(
    store: StoreConfig, projectors: Any
) -> None:
    # given a backlog of events no projector has applied yet
    with OncoLedger(store, project_inline=False) as system:
        total = _record(system, range(150), 19)
        assert system.views.status()["lag"] == total == 3000
        # when a projector is killed (SIGKILL) once it has committed part of the backlog
        victim = projectors("--poll", "0.02")
        _wait(lambda: system.views.position() > 0)
        victim.kill()
        victim.wait()
        committed = system.views.position()
    # then a new run applies exactly the rest: what the killed one committed stays applied once
    rest = projectors("--once")
    out, _ = rest.communicate(timeout=BOUND)
    report = json.loads(out)
    assert rest.returncode == 0
    assert report["applied"] == total - committed
    assert (report["position"], report["lag"]) == (total, 0)
    _equals_clean_rebuild(store)


def _serve(config: StoreConfig, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`oncoledger serve` as a real process; returns it and its base URL once it answers."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = _env(config)
    if config.sqlite_path:
        env["ONCOLEDGER_DB"] = config.sqlite_path
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + BOUND
    while True:
        assert process.poll() is None, f"serve exited with {process.returncode}"
        assert time.monotonic() < deadline, "serve did not start"
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)


def test_a_server_killed_under_concurrent_load_loses_and_doubles_nothing(
    store: StoreConfig,
) -> None:
    import threading
    import uuid

    import httpx

    with OncoLedger(store) as system:
        token = system.tokens.create("load", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    server, url = _serve(store)
    try:
        patients = [f"K{i}" for i in range(6)]
        for pid in patients:
            body = {"patient_id": pid, "sex": "male", "birth_year": 1940, "occurred": "2016-04-26"}
            assert httpx.post(f"{url}{V1}/patients", json=body, headers=headers).status_code == 201
        acknowledged: dict[str, list[str]] = {pid: [] for pid in patients}
        enough = threading.Event()

        def client(pid: str) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
                for n in range(10_000):
                    event_id = str(uuid.uuid4())
                    body = {"type": "ctc_count", "occurred": "2016-06-01", "count": n}
                    try:
                        response = http.post(
                            f"{V1}/patients/{pid}/events", json=body | {"event_id": event_id}
                        )
                    except httpx.TransportError:
                        return  # the server is gone
                    if response.status_code == 201:
                        acknowledged[pid].append(event_id)
                    if sum(len(a) for a in acknowledged.values()) >= 150:
                        enough.set()

        threads = [threading.Thread(target=client, args=(pid,)) for pid in patients]
        for thread in threads:
            thread.start()
        assert enough.wait(BOUND), "the load did not get going"
        # when the server is killed (SIGKILL) in the middle of it
        server.kill()
        server.wait()
        for thread in threads:
            thread.join(BOUND)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # then every acknowledged event is stored exactly once, versions contiguous, chains intact
    with OncoLedger(store, project_inline=False) as system:
        for pid in patients:
            stored = [str(e.event_id) for e in system.ledger.history(pid)]
            assert len(stored) == len(set(stored)) == system.ledger.version(pid)
            missing = set(acknowledged[pid]) - set(stored)
            assert not missing, f"{len(missing)} acknowledged events of {pid} lost"
            versions = [v for p, v, _ in system.ledger.scan(pid) if p == pid]
            assert versions == list(range(1, len(stored) + 1))
        assert system.verify().ok
        head = system.views.head()
    assert sum(len(a) for a in acknowledged.values()) >= 150
    # and after a restart the projector brings the views to a clean rebuild's content
    server, url = _serve(store)
    try:

        def caught_up() -> bool:
            status = httpx.get(f"{url}{V1}/projections/status", headers=headers).json()
            return bool(status["lag"] == 0 and status["head"] == head)

        _wait(caught_up)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(BOUND)
    _equals_clean_rebuild(store)


def test_incremental_projection_with_corrections_and_late_entries_equals_a_full_recompute(
    store: StoreConfig,
) -> None:
    # given a patient whose events arrive one projector round at a time (kept history in use)
    with OncoLedger(store, project_inline=False) as system:
        projector = Projector(system.views)
        _record(system, range(1), 2)
        projector.step()
        late = system.append(
            "PRJ-0000",
            [{"type": "ctc_count", "occurred": "2015-01-02", "count": 40}],
            actor="nurse.a",
            source="cli",
        )[0]
        projector.step()
        amended = system.amend(
            "PRJ-0000",
            late.event_id,
            {"type": "ctc_count", "occurred": "2015-01-02", "count": 4},
            reason="transcription error",
            actor="nurse.b",
            source="cli",
        )
        projector.step()
        first = system.history("PRJ-0000")[1]
        system.retract(
            "PRJ-0000", first.event_id, reason="wrong patient", actor="nurse.b", source="cli"
        )
        projector.step()
        assert system.views.status()["lag"] == 0 and amended.version == 5
        # then every stored view equals what a full recompute from the stream gives
        history = system.history("PRJ-0000")
        for view in readmodels.PATIENT_VIEWS:
            stored = system.views.doc("PRJ-0000", view)
            computed = readmodels.compute(view, "PRJ-0000", history)
            assert stored is not None and json.loads(stored) == msgspec.to_builtins(computed)
        draws = json.loads(system.views.doc("PRJ-0000", "ctc") or b"{}")["draws"]
        assert [d["count"] for d in draws] == [4, 1]  # late entry first, as amended; 0 retracted
    # and equals a clean rebuild
    _equals_clean_rebuild(store)


def test_a_rebuild_killed_midway_is_resumed_by_the_projector(store: StoreConfig) -> None:
    # given views current over 3,000 events
    with OncoLedger(store) as system:
        total = _record(system, range(150), 19)
        assert system.views.status() == {"position": total, "head": total, "lag": 0, "behind": 0}
    # when `projections rebuild` is killed (SIGKILL) after committing part of the rebuild
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
        # then the projector applies exactly the rest, from where the rebuild committed (on
        # PostgreSQL the killed client's backend may hold the tracking row a moment longer,
        # and a round skips a locked row: rounds until the lag is gone, counted together)
        projector = Projector(watcher.views)
        applied: list[int] = []

        def caught_up() -> bool:
            applied.append(projector.step())
            return bool(watcher.views.status()["lag"] == 0)

        _wait(caught_up)
        assert sum(applied) == total - committed
    # and the result is what a clean rebuild gives
    _equals_clean_rebuild(store)


def test_serve_no_projector_leaves_projection_to_a_worker(
    store: StoreConfig, projectors: Any
) -> None:
    import httpx

    with OncoLedger(store) as system:
        headers = {"Authorization": f"Bearer {system.tokens.create('w', 'admin')}"}
    server, url = _serve(store, "--no-projector")
    try:
        body = {"patient_id": "W1", "sex": "female", "birth_year": 1950, "occurred": "2016-04-26"}
        assert httpx.post(f"{url}{V1}/patients", json=body, headers=headers).status_code == 201
        # then the server answered without projecting, and reads of W1 are current anyway
        status = httpx.get(f"{url}{V1}/projections/status", headers=headers).json()
        assert status == {"position": 0, "head": 1, "lag": 1, "projector": False}
        row = httpx.get(f"{url}{V1}/patients/W1", headers=headers).json()
        assert row["events"] == 1 and row["birth_year"] == 1950
        # when a worker runs once, then the cohort list shows the patient, current
        worker = projectors("--once")
        out, _ = worker.communicate(timeout=BOUND)
        assert json.loads(out)["applied"] == 1
        page = httpx.get(f"{url}{V1}/patients", headers=headers).json()
        assert [p["patient_id"] for p in page["patients"]] == ["W1"] and page["lag"] == 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(BOUND)


class _Backlog:
    """Views stand-in: each round applies one event; the first round sees a save meanwhile."""

    def __init__(self) -> None:
        self.applied = 0
        self.projector: Projector | None = None

    def catch_up(self, *, skip_locked: bool = False) -> int:
        self.applied += 1
        if self.applied == 1 and self.projector is not None:
            self.projector.wake()  # this process saved while the round ran: under a write load
        return 1

    def position(self) -> int:
        return self.applied


def test_a_read_waiting_for_the_views_cuts_the_projectors_gathering_pause_short() -> None:
    # given a projector that, under a write load, lets saves gather for longer than any wait
    views = _Backlog()
    projector = Projector(views, gather=10 * BOUND)  # type: ignore[arg-type]
    views.projector = projector
    projector.start()
    try:
        _wait(lambda: views.applied >= 1)
        # when a read waits for a position the next round reaches, then it does not wait out
        # the pause: the round runs at once
        assert projector.wait_for(2, BOUND)
    finally:
        projector.stop()


def _postgres_only(store: StoreConfig) -> None:
    if not store.is_postgres:
        pytest.skip("one active projector per database is PostgreSQL's (its advisory lock)")


def test_on_postgres_one_projector_is_active_and_another_takes_over_when_it_stops(
    store: StoreConfig,
) -> None:
    _postgres_only(store)
    with (
        OncoLedger(store, project_inline=False) as writer,
        OncoLedger(store, project_inline=False) as a,
        OncoLedger(store, project_inline=False) as b,
    ):
        first, second = Projector(a.views, poll=0.02), Projector(b.views, poll=0.02)
        try:
            # given a projector that has taken the lead and applied what was recorded
            total = _record(writer, range(5), 3)
            assert first.step() == total and first.active
            # when more is recorded, the other one stands by: it applies nothing
            total += _record(writer, range(5, 10), 3)
            assert second.step() == 0 and not second.active
            assert writer.views.status()["lag"] == total - first.applied > 0
            # then once the active one stops, the other takes over from the tracked position
            first.stop()
            assert not first.active
            _wait(lambda: second.step() > 0)
            assert second.active
            assert first.applied + second.applied == total
            assert writer.views.status()["lag"] == 0
        finally:
            first.stop()
            second.stop()
    _equals_clean_rebuild(store)


def test_on_postgres_a_standby_takes_over_from_an_active_projector_killed_with_sigkill(
    store: StoreConfig, projectors: Any
) -> None:
    _postgres_only(store)
    with OncoLedger(store, project_inline=False) as system:
        # given a projector process that is the active one, and one standing by in here
        active = projectors("--poll", "0.02")
        first = _record(system, range(20), 9)
        _wait(lambda: system.views.position() == first)
        standby = Projector(system.views, poll=0.02)
        try:
            total = first + _record(system, range(20, 60), 9)
            assert standby.step() == 0 and not standby.active
            # when the active one is killed (SIGKILL), possibly mid-batch
            active.kill()
            active.wait()
            # then the standby takes the lead (its session ended, and the lock with it) and
            # applies exactly what the killed one had not committed
            committed = system.views.position()
            _wait(lambda: standby.step() > 0 or system.views.status()["lag"] == 0)
            while standby.step():
                pass
            assert standby.active
            assert standby.applied == total - committed
            assert system.views.status()["lag"] == 0
        finally:
            standby.stop()
    _equals_clean_rebuild(store)
