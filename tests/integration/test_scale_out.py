"""Scale-out with real processes (issue 11): two API processes (one of them `serve --workers 2`,
a projector embedded in each worker; the other `serve --no-projector`) and two `oncoledger
projections run` processes on one database under concurrent load. Nothing is lost or doubled,
a retry sent to the other process is a replay, If-Match is decided by the database, every read
of P right after a 201 for P reflects that write from the other process too, and the views
equal a rebuild. Meant for PostgreSQL; on SQLite the same holds, its writes taking turns."""

from __future__ import annotations

import threading
import uuid

import httpx

from domain.ledger.application import StoreConfig
from tests.processes import (
    BOUND,
    V1,
    assert_chains_verify,
    assert_stored_exactly_once,
    assert_views_equal_a_fresh_rebuild,
    output,
    processes,
    projection_status,
    register,
    wait_until,
)

WRITES = 8  # per client, in the two-API-processes test


def _caught_up(url: str, token: str) -> bool:
    status = projection_status(url, token)
    return bool(status["lag"] == 0)


def test_two_api_processes_and_two_projectors_on_one_database(store: StoreConfig) -> None:
    # (the scale-out of PostgreSQL; on SQLite the same holds, its writes taking turns)
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
        # (a failure shows the servers' logs: a 500's traceback is only there)
        assert not errors, f"{errors[0]}\n{output(first)[-6000:]}\n{output(second)[-6000:]}"
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
