"""Crash recovery with real processes (issue 11), on SQLite and PostgreSQL: `kill -9` of the
server under 32 concurrent clients, three times in a row, and `kill -9` of a standalone
projector in the middle of its batches while the API takes writes, three times. After each:
every acknowledged event stored exactly once at the version its receipt gave, versions
contiguous, `oncoledger verify` passes; at the end the views equal a rebuild into a fresh views
store. (The scale-out counterpart: test_scale_out.py.)"""

from __future__ import annotations

from domain.ledger.application import StoreConfig
from tests.processes import (
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
            wait_until(lambda: load.count >= before + 40, "the load gets going")  # noqa: B023
            # when it is killed (SIGKILL) in the middle of it
            procs.kill(server)
            load.join()
            # then every acknowledged event is stored once, versions contiguous, chains intact
            assert_stored_exactly_once(store, acknowledged)
            assert_chains_verify(procs)
        assert sum(len(a) for a in acknowledged.values()) >= 120
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
