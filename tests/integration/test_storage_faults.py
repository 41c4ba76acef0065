"""I/O failures at the driver, on SQLite and PostgreSQL: each write is answered truthfully.

A fault is injected where the library calls the database driver (the recorder), as the driver
would raise it: a lost connection, a full disk, a commit that failed after it was made durable,
and a store that cannot even be asked afterwards. The answer is 201 (stored), 503/507 with
"nothing was stored", or 503 with `extra.outcome: "unknown"` and the event id to retry with.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from eventsourcing.persistence import OperationalError
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from cli.main import cli
from domain.ledger.access_log import AccessLog
from domain.ledger.application import Ledger, StoreConfig
from projections.root import OncoLedger
from projections.views import Views

V1 = "/api/v1"
CTC = {"type": "ctc_count", "occurred": "2021-01-01", "count": 3}


def _driver_error(store: StoreConfig, what: str) -> Exception:
    """The exception the store's driver raises for `what` ("lost" or "full")."""
    if store.is_postgres:
        import psycopg

        if what == "full":
            return psycopg.errors.DiskFull("could not extend file: No space left on device")
        return psycopg.OperationalError("server closed the connection unexpectedly")
    if what == "full":
        return sqlite3.OperationalError("database or disk is full")
    return sqlite3.OperationalError("disk I/O error")


def _wrapped(error: Exception) -> Exception:
    """As the library hands it on: its own OperationalError, the driver's error as the cause."""
    wrapped = OperationalError(str(error))
    wrapped.__cause__ = error
    return wrapped


class Faults:
    """Faults injected into one ledger's recorder; `calls` counts the inserts attempted."""

    def __init__(self, system: OncoLedger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.recorder = system.ledger.recorder
        self.insert = self.recorder.insert_events
        self.select = self.recorder.select_events
        self.calls = 0
        self.on_insert: Exception | None = None
        self.commit_first = False  # the commit happens, then the error is raised all the same
        self.unreachable_after = False  # after a failed insert, every read fails too
        self._down = False
        monkeypatch.setattr(self.recorder, "insert_events", self._insert)
        monkeypatch.setattr(self.recorder, "select_events", self._select)

    def _insert(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.on_insert is None:
            return self.insert(*args, **kwargs)
        if self.commit_first:
            self.insert(*args, **kwargs)
        self._down = self.unreachable_after
        raise _wrapped(self.on_insert)

    def _select(self, *args: Any, **kwargs: Any) -> Any:
        if self._down:
            raise _wrapped(_driver_error_like(self.on_insert))
        return self.select(*args, **kwargs)

    def heal(self) -> None:
        self.on_insert, self._down = None, False


def _driver_error_like(error: Exception | None) -> Exception:
    return type(error)("connection lost") if error is not None else RuntimeError("no fault")


def _break(monkeypatch: pytest.MonkeyPatch, owner: type, method: str, error: Exception) -> None:
    """Make every call of `owner.method` raise `error`, as the database under it would."""

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(owner, method, broken)


@pytest.fixture
def api(store: StoreConfig) -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    with OncoLedger(store) as system:
        token = system.tokens.create("nurse", "admin")
    with TestClient(app=create_app(store)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        body = {"patient_id": "P1", "sex": "male", "occurred": "2020-01-01"}
        assert client.post(f"{V1}/patients", json=body, headers=headers).status_code == 201
        yield client, headers


def _ledger(client: TestClient[Litestar]) -> OncoLedger:
    system: OncoLedger = client.app.state.ledger
    return system


def _event_ids(client: TestClient[Litestar], headers: dict[str, str]) -> list[str]:
    events = client.get(f"{V1}/patients/P1/events", headers=headers).json()["events"]
    return [e["event_id"] for e in events]


def test_a_pipeline_aborted_by_an_earlier_statement_is_run_again_not_told_as_a_lost_store(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
) -> None:
    # given a commit that PostgreSQL's driver reports as "pipeline aborted" once (an earlier
    # statement of the transaction failed: the unique key another process's write took; seen
    # in CI as a 503 "store unavailable" under two API processes)
    psycopg = pytest.importorskip("psycopg")
    client, headers = api
    faults = Faults(_ledger(client), monkeypatch)
    faults.on_insert = psycopg.errors.PipelineAborted("pipeline aborted")
    insert = faults._insert

    def once(*args: Any, **kwargs: Any) -> Any:
        try:
            return insert(*args, **kwargs)
        finally:
            faults.heal()

    monkeypatch.setattr(faults.recorder, "insert_events", once)
    # when an event is appended
    sent = client.post(f"{V1}/patients/P1/events", json=CTC, headers=headers)
    # then the ledger runs it again from the stream and stores it once: not a 503
    assert sent.status_code == 201, sent.text
    assert faults.calls == 2
    assert _event_ids(client, headers).count(sent.json()["event_id"]) == 1


@pytest.mark.parametrize(("what", "status"), [("lost", 503), ("full", 507)])
def test_a_failed_commit_that_did_not_happen_is_refused_as_what_it_is(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
    what: str,
    status: int,
) -> None:
    client, headers = api
    faults = Faults(_ledger(client), monkeypatch)
    faults.on_insert = _driver_error(store, what)
    event_id = str(uuid.uuid4())
    # when the store fails the commit (and the event was not stored)
    response = client.post(
        f"{V1}/patients/P1/events", json=CTC | {"event_id": event_id}, headers=headers
    )
    # then the answer says why and that nothing was stored; the fault is not run again as if
    # it were contention (one attempt, no 409 "too busily")
    assert response.status_code == status, response.text
    error = response.json()
    assert "nothing was stored" in error["detail"]
    assert error["extra"]["kind"] == ("storage_full" if what == "full" else "unavailable")
    assert faults.calls == 1
    faults.heal()
    assert event_id not in _event_ids(client, headers)


def test_a_commit_that_happened_before_its_error_is_acknowledged(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
) -> None:
    client, headers = api
    faults = Faults(_ledger(client), monkeypatch)
    faults.on_insert, faults.commit_first = _driver_error(store, "lost"), True
    # when the commit is made durable but its answer is lost
    response = client.post(f"{V1}/patients/P1/events", json=CTC, headers=headers)
    faults.heal()
    # then the write is acknowledged, stored once, and the views show it
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert _event_ids(client, headers).count(receipt["event_id"]) == 1
    draws = client.get(f"{V1}/patients/P1/ctc", headers=headers).json()["draws"]
    assert [d["event_id"] for d in draws] == [receipt["event_id"]]


@pytest.mark.parametrize("committed", [True, False])
def test_an_unknown_outcome_names_the_event_id_and_a_retry_with_it_is_safe(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
    committed: bool,
) -> None:
    client, headers = api
    faults = Faults(_ledger(client), monkeypatch)
    faults.on_insert = _driver_error(store, "lost")
    faults.commit_first, faults.unreachable_after = committed, True
    # when the commit fails and the store cannot be asked afterwards (no event_id sent)
    response = client.post(f"{V1}/patients/P1/events", json=CTC, headers=headers)
    # then 503 says the outcome is unknown and names the id the server gave the event
    assert response.status_code == 503, response.text
    error = response.json()
    assert error["extra"]["outcome"] == "unknown"
    event_id = error["extra"]["event_id"]
    assert uuid.UUID(event_id) and event_id in error["detail"] and "safe" in error["detail"]
    # and once the store is back, the same body sent again with that id is stored exactly once
    faults.heal()
    retry = client.post(
        f"{V1}/patients/P1/events", json=CTC | {"event_id": event_id}, headers=headers
    )
    assert retry.status_code == 201, retry.text
    assert retry.json()["event_id"] == event_id
    assert retry.headers["Idempotent-Replay"] == ("true" if committed else "false")
    assert _event_ids(client, headers).count(event_id) == 1


def test_a_stored_write_whose_views_cannot_catch_up_is_acknowledged(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
) -> None:
    client, headers = api
    # the projector's round for the registration ends first (a round already inside the real
    # catch-up would also apply the next event), then it runs on with the views broken
    projector = _ledger(client).projector
    assert projector is not None
    projector.stop()
    _break(monkeypatch, Views, "catch_up", _driver_error(store, "full"))
    projector.start()
    # when the event is stored but the views cannot be updated (say, a full disk under them)
    response = client.post(f"{V1}/patients/P1/events", json=CTC, headers=headers)
    # then the write is acknowledged: the ledger has it
    assert response.status_code == 201, response.text
    event_id = response.json()["event_id"]
    # and per-patient reads still reflect it (derived from the stream while the views lag)
    draws = client.get(f"{V1}/patients/P1/ctc", headers=headers).json()["draws"]
    assert [d["event_id"] for d in draws] == [event_id]
    patient = client.get(f"{V1}/patients/P1", headers=headers)
    assert patient.status_code == 200 and patient.json()["events"] == 2
    # and the cohort index, which would be incomplete, says so rather than answer
    cohort = client.get(f"{V1}/patients", headers=headers)
    assert cohort.status_code == 503 and cohort.json()["extra"]["rule"] == "views_behind"
    # when the views can write again, they catch up by themselves
    monkeypatch.undo()
    rows = client.get(f"{V1}/patients", headers=headers).json()["patients"]
    assert [(r["patient_id"], r["events"]) for r in rows] == [("P1", 2)]


def test_a_read_whose_access_entry_cannot_be_written_is_refused(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
) -> None:
    client, headers = api
    _break(monkeypatch, AccessLog, "record", _driver_error(store, "full"))
    # when a clinical read cannot be recorded in the access log
    for path in ("/P1/ctc", "/P1/events", "/P1", ""):
        response = client.get(f"{V1}/patients{path}", headers=headers)
        # then it is refused with a clear 503 (fail closed), its content not sent
        assert response.status_code == 503, (path, response.text)
        error_body = response.json()
        assert error_body["extra"]["rule"] == "access_log_unavailable"
        assert "access log" in error_body["detail"] and "draws" not in response.text
    # and the CLI refuses the same way, exit 1
    result = CliRunner().invoke(cli, ["ctc", "P1"], env=_cli_env(store))
    assert result.exit_code == 1 and "access log" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_read_when_the_store_is_lost_answers_503(
    api: tuple[TestClient[Litestar], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    store: StoreConfig,
) -> None:
    client, headers = api
    _break(monkeypatch, Ledger, "version", _wrapped(_driver_error(store, "lost")))
    # when the store goes away under a read
    response = client.get(f"{V1}/patients/P1/ctc", headers=headers)
    # then the answer is 503 saying so, not a 500
    assert response.status_code == 503, response.text
    assert response.json()["extra"]["kind"] == "unavailable"
    assert "store is unavailable" in response.json()["detail"]


def _cli_env(store: StoreConfig) -> dict[str, str | None]:
    return {
        "ONCOLEDGER_DB": store.sqlite_path,
        "ONCOLEDGER_DATABASE_URL": store.database_url,
        "ONCOLEDGER_DATABASE_SCHEMA": store.schema,
    }


def test_the_cli_names_the_event_id_to_retry_with_when_the_outcome_is_unknown(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    env = _cli_env(store)
    register = ["patient", "register", "P1", "--sex", "male", "--on", "2020-01-01"]
    assert runner.invoke(cli, register, env=env).exit_code == 0
    opened: list[Faults] = []
    original_init = OncoLedger.__init__

    def faulty_init(self: OncoLedger, config: StoreConfig | None = None) -> None:
        original_init(self, config)
        faults = Faults(self, monkeypatch)
        faults.on_insert, faults.unreachable_after = _driver_error(store, "lost"), True
        opened.append(faults)

    monkeypatch.setattr(OncoLedger, "__init__", faulty_init)
    # when `record` cannot learn whether its commit happened
    record = ["record", "P1", "ctc", "--on", "2021-01-01", "--count", "3"]
    result = runner.invoke(cli, record, env=env)
    # then it exits 1 naming the event id it assigned, and the option to send it again with
    assert result.exit_code == 1, result.output
    assert "outcome is unknown" in result.output and "Traceback" not in result.output
    event_id = result.output.split("--event-id ")[1].split()[0].rstrip(".")
    assert uuid.UUID(event_id)
    # and running it again with that id (the store back) records it once
    monkeypatch.undo()
    again = runner.invoke(cli, [*record, "--event-id", event_id], env=env)
    assert again.exit_code == 0, again.output
    history = runner.invoke(cli, ["history", "P1", "--json"], env=env).output
    assert history.count(event_id) == 1


def test_an_unreachable_postgresql_is_told_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a PostgreSQL URL where no server listens (port 1 of this machine)
    env = {"ONCOLEDGER_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    # when any command runs
    result = CliRunner().invoke(cli, ["init"], env=env)
    # then it stops with exit 1 and a sentence saying the store is unavailable
    assert result.exit_code == 1, result.output
    assert "store is unavailable (PostgreSQL" in result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output


@pytest.mark.parametrize("same_body", [True, False])
def test_a_failed_commit_whose_event_id_another_writer_stored_is_answered_by_its_body(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch, same_body: bool
) -> None:
    from domain.codec import decode_entry
    from domain.errors import Conflict

    registration = decode_entry(
        {"type": "patient_registered", "occurred": "2020-01-01", "sex": "male"}
    )
    first, second = Ledger(store), Ledger(store)
    try:
        first.append("P1", [registration], actor="a", source="api")
        event_id = str(uuid.uuid4())
        mine = decode_entry(CTC | {"event_id": event_id})
        theirs = decode_entry(CTC | {"event_id": event_id, "count": 3 if same_body else 5})
        insert = first.recorder.insert_events

        def racing_insert(*args: Any, **kwargs: Any) -> Any:
            # another writer (a retry racing this one) stores the same event id first; then
            # this commit fails on a lost connection, and the store is asked what happened
            second.append("P1", [theirs], actor="b", source="api")
            monkeypatch.setattr(first.recorder, "insert_events", insert)
            raise _wrapped(_driver_error(store, "lost"))

        monkeypatch.setattr(first.recorder, "insert_events", racing_insert)
        if same_body:
            # then the same body is answered as any retry of a stored event: its receipt
            [receipt] = first.append("P1", [mine], actor="a", source="api")
            assert str(receipt.event_id) == event_id and receipt.created is False
        else:
            # then a different body is refused: the id names another event
            with pytest.raises(Conflict, match="different body"):
                first.append("P1", [mine], actor="a", source="api")
        assert [e.event_id for e in second.history("P1")][1:] == [uuid.UUID(event_id)]
    finally:
        first.close()
        second.close()
