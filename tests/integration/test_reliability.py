"""Reliability with real processes (issue 11), on SQLite and PostgreSQL: `kill -9` of the server
under 32 concurrent clients, three times in a row; `kill -9` of a standalone projector in the
middle of its batches while the API takes writes, three times; and, on PostgreSQL, two API
processes (one of them `serve --workers 2`) and two projector processes on one database under
concurrent load. After each: every acknowledged event stored exactly once, versions contiguous,
`oncoledger verify` passes, and the views equal a rebuild into a fresh views store."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from domain.ledger.application import StoreConfig
from tests.processes import (
    BOUND,
    V1,
    Load,
    assert_chains_verify,
    assert_stored_exactly_once,
    assert_views_equal_a_fresh_rebuild,
    processes,
    projection_status,
    register,
    wait_until,
)

CLIENTS = 32
WRITES = 8  # per client, in the two-API-processes test


def _caught_up(url: str, token: str) -> bool:
    status = projection_status(url, token)
    return bool(status["lag"] == 0)


def test_a_server_killed_three_times_under_32_clients_loses_and_doubles_nothing(
    store: StoreConfig,
) -> None:
    patients = [f"KILL-{i:02d}" for i in range(CLIENTS)]
    token = register(store, patients)
    acknowledged: dict[str, dict[str, int]] = {pid: {} for pid in patients}
    with processes(store) as procs:
        for _ in range(3):
            # given a server under load from 32 clients
            server, url = procs.serve()
            load = Load(url, token, patients, acknowledged=acknowledged)
            before = load.count
            load.start()
            wait_until(lambda: load.count >= before + 60, "the load gets going")  # noqa: B023
            # when it is killed (SIGKILL) in the middle of it
            procs.kill(server)
            load.join()
            # then every acknowledged event is stored once, versions contiguous, chains intact
            assert_stored_exactly_once(store, acknowledged)
            assert_chains_verify(procs)
        assert sum(len(a) for a in acknowledged.values()) >= 180
        # and after a restart the embedded projector brings the views to a rebuild's content
        server, url = procs.serve()
        wait_until(lambda: _caught_up(url, token), "the views catch up after the restarts")
        procs.stop(server)
    assert_views_equal_a_fresh_rebuild(store, patients)


def test_a_projector_killed_three_times_mid_batch_under_load_applies_each_event_once(
    store: StoreConfig,
) -> None:
    patients = [f"PKILL-{i:02d}" for i in range(CLIENTS)]
    token = register(store, patients)
    with processes(store) as procs:
        # given the API taking writes from 32 clients, projection left to a worker process
        server, url = procs.serve("--no-projector")
        load = Load(url, token, patients, per_client=1_000).start()
        try:
            for round_ in range(3):
                wait_until(lambda: load.count >= 40 * (round_ + 1), "writes arrive")  # noqa: B023
                start = projection_status(url, token)["position"]
                # when a projector process is killed (SIGKILL) once it has committed a batch
                # and has more to apply
                projector = procs.projector()
                wait_until(
                    lambda: projection_status(url, token)["position"] > start,  # noqa: B023
                    "the projector commits a batch",
                )
                procs.kill(projector)
        finally:
            load.stop()
        # then a new projector applies the rest, and the views equal a clean rebuild
        head = projection_status(url, token)["head"]
        projector = procs.projector()
        wait_until(lambda: projection_status(url, token)["position"] == head, "caught up")
        procs.stop(projector)
        procs.stop(server)
        assert_stored_exactly_once(store, load.acknowledged)
        assert_chains_verify(procs)
    assert_views_equal_a_fresh_rebuild(store, patients)


@pytest.mark.postgres
def test_two_api_processes_and_two_projectors_on_one_postgres_database(
    store: StoreConfig,
) -> None:
    if not store.database_url:
        pytest.skip("several API processes on one database: PostgreSQL")
    patients = [f"TWO-{i:02d}" for i in range(16)]
    token = register(store, patients)
    headers = {"Authorization": f"Bearer {token}"}
    stale: list[str] = []
    acknowledged: dict[str, dict[str, int]] = {pid: {} for pid in patients}
    with processes(store) as procs:
        # given `serve --workers 2` (a projector in each worker), a second API process that
        # leaves projection to workers, and two projector processes, all on one database
        first, first_url = procs.serve("--workers", "2")
        second, second_url = procs.serve("--no-projector")
        projectors = [procs.projector(), procs.projector()]
        urls = (first_url, second_url)

        def client(n: int, pid: str) -> None:
            with httpx.Client(headers=headers, timeout=30) as http:
                for i in range(WRITES):
                    here, there = urls[(n + i) % 2], urls[(n + i + 1) % 2]
                    event_id = str(uuid.uuid4())
                    body = {"type": "ctc_count", "occurred": "2016-06-01", "count": i}
                    sent = http.post(
                        f"{here}{V1}/patients/{pid}/events", json=body | {"event_id": event_id}
                    )
                    assert sent.status_code == 201, sent.text
                    version = int(sent.json()["version"])
                    acknowledged[pid][event_id] = version
                    # then a read of the patient right after, from the other process (a new
                    # connection: any worker), reflects the write
                    row = httpx.get(f"{there}{V1}/patients/{pid}", headers=headers, timeout=30)
                    history = httpx.get(
                        f"{there}{V1}/patients/{pid}/events", headers=headers, timeout=30
                    )
                    ids = [e["event_id"] for e in history.json()["events"]]
                    if row.json()["events"] != version or ids[-1:] != [event_id]:
                        stale.append(f"{pid} v{version} read from {there}")
                    if i % 4 == 3:
                        # the same event sent again to the other process is stored once
                        again = http.post(
                            f"{there}{V1}/patients/{pid}/events", json=body | {"event_id": event_id}
                        )
                        assert again.status_code == 201, again.text
                        assert again.headers.get("idempotent-replay") == "true"
                        assert again.json()["version"] == version
                    if i % 4 == 1:
                        # an If-Match on a version already passed is refused by the other process
                        refused = http.post(
                            f"{there}{V1}/patients/{pid}/events",
                            json=body | {"event_id": str(uuid.uuid4())},
                            headers={"If-Match": f'"{version - 1}"'},
                        )
                        assert refused.status_code == 412, refused.text

        errors: list[BaseException] = []

        def guarded(n: int, pid: str) -> None:
            try:
                client(n, pid)
            except BaseException as exc:  # surfaced below, in the test's thread
                errors.append(exc)

        threads = [
            threading.Thread(target=guarded, args=(n, pid)) for n, pid in enumerate(patients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BOUND)
        assert not errors, errors[0]
        assert not stale, stale[:5]
        # and when the projectors have caught up, nothing was lost or doubled
        wait_until(lambda: _caught_up(first_url, token), "the projectors catch up")
        assert projection_status(second_url, token)["lag"] == 0
        for process in (*projectors, second, first):
            procs.stop(process)
        assert sum(len(a) for a in acknowledged.values()) == 16 * WRITES
        assert_stored_exactly_once(store, acknowledged)
        assert_chains_verify(procs)
    assert_views_equal_a_fresh_rebuild(store, patients)
