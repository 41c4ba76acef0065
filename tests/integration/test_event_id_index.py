"""Issue 9, case 1: an `event_id` names one event in the whole ledger, and the write side says so.

The event store refuses, in the append's own transaction, an id that another stream holds, so
the loser of any race stores nothing and gets a conflict; the read side never has to refuse
what the ledger stored. Stores made before the index existed get it filled on opening.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import Cli
from litestar.testing import TestClient

from api.app import create_app
from domain.codec import decode_entry
from domain.errors import Conflict
from domain.ledger.application import Ledger, StoreConfig
from projections.root import OncoLedger

SHARED = "11111111-1111-4111-8111-111111111111"
REG = {"type": "patient_registered", "occurred": "2020-01-01", "sex": "male"}


def ctc(**fields: Any) -> dict[str, Any]:
    return {"type": "ctc_count", "occurred": "2023-01-01", "count": 1} | fields


def invoke(store: StoreConfig, *args: str, input: str | None = None) -> Any:
    return Cli(store, actor="dm", expect=None)(*args, input=input)


def stored_count(store: StoreConfig) -> int:
    with OncoLedger(store) as system:
        return sum(1 for _ in system.ledger.scan())


def test_import_reusing_an_id_in_another_stream_refuses_that_line_and_views_stay_current(
    store: StoreConfig, tmp_path: Path
) -> None:
    # given the file: the 4th line reuses the 3rd line's event_id for another patient
    file = tmp_path / "dup.jsonl"
    file.write_text(
        "\n".join(
            json.dumps(line)
            for line in (
                {"patient_id": "IA", **REG},
                {"patient_id": "IB", **REG},
                {"patient_id": "IA", **ctc(event_id=SHARED)},
                {"patient_id": "IB", **ctc(event_id=SHARED)},
            )
        )
    )
    # when it is imported
    result = invoke(store, "import", str(file))
    # then line 4 is refused as a conflict, the others are stored
    assert result.exit_code == 2, result.output
    assert "line 4:" in result.stderr and "already used by another patient" in result.stderr
    assert stored_count(store) == 3
    # and every derived read works: the views are at the head, IB has no draw, rebuild succeeds
    status = json.loads(invoke(store, "projections", "status", "--json").stdout)
    assert status["behind"] == 0 and status["head"] == 3
    ib = invoke(store, "ctc", "IB", "--json")
    assert ib.exit_code == 0 and json.loads(ib.stdout)["draws"] == []
    assert invoke(store, "projections", "rebuild").exit_code == 0
    ia = json.loads(invoke(store, "ctc", "IA", "--json").stdout)
    assert [d["event_id"] for d in ia["draws"]] == [SHARED]


def test_record_and_append_reusing_an_id_of_another_stream_exit_4(store: StoreConfig) -> None:
    for pid in ("IA", "IB"):
        assert (
            invoke(store, "patient", "register", pid, "--sex", "male", "--on", "2020").exit_code
            == 0
        )
    draw = ("ctc", "--on", "2023-01-01", "--count", "1", "--event-id", SHARED)
    assert invoke(store, "record", "IA", *draw).exit_code == 0
    result = invoke(store, "record", "IB", *draw)
    assert result.exit_code == 4 and "already used by another patient" in result.stderr
    result = invoke(store, "append", "IB", "-", input=json.dumps([ctc(), ctc(event_id=SHARED)]))
    assert result.exit_code == 4, result.output
    assert stored_count(store) == 3


def test_two_ledgers_without_any_read_side_cannot_both_store_one_id(store: StoreConfig) -> None:
    # given two processes' ledgers on one store, and no views at all
    first, second = Ledger(store), Ledger(store)
    try:
        first.append("IA", [decode_entry(REG)], actor="a", source="api")
        second.append("IB", [decode_entry(REG)], actor="b", source="api")
        first.append("IA", [decode_entry(ctc(event_id=SHARED))], actor="a", source="api")
        # when the other process sends the same id to another patient, it is a conflict
        with pytest.raises(Conflict) as refused:
            second.append("IB", [decode_entry(ctc(event_id=SHARED))], actor="b", source="api")
        assert refused.value.field == "event_id" and refused.value.rule == "unique_event_id"
        # and nothing was stored for IB; IB's stream still takes appends
        assert second.version("IB") == 1
        assert second.append("IB", [decode_entry(ctc())], actor="b", source="api")[0].version == 2
    finally:
        first.close()
        second.close()


def test_a_resent_id_in_its_own_stream_is_still_a_safe_retry(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        system.append("IA", [REG], actor="a", source="cli")
        first = system.append("IA", [ctc(event_id=SHARED)], actor="a", source="cli")[0]
        again = system.append("IA", [ctc(event_id=SHARED)], actor="a", source="cli")[0]
    assert first.created and not again.created and again.hash == first.hash


def test_concurrent_rest_appends_of_one_id_to_two_patients(store: StoreConfig) -> None:
    # given two patients, and two clients sending one event_id to each at the same moment
    with TestClient(create_app(store)) as client:
        system: OncoLedger = client.app.state.ledger
        headers = {"Authorization": f"Bearer {system.tokens.create('c', 'clinician')}"}
        for pid in ("IA", "IB"):
            body = {"patient_id": pid, **REG}
            body.pop("type")
            assert client.post("/api/v1/patients", json=body, headers=headers).status_code == 201
        start = threading.Barrier(2)
        statuses: dict[str, int] = {}

        def send(pid: str) -> None:
            start.wait()
            url = f"/api/v1/patients/{pid}/events"
            statuses[pid] = client.post(url, json=ctc(event_id=SHARED), headers=headers).status_code

        threads = [threading.Thread(target=send, args=(pid,)) for pid in ("IA", "IB")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # then one is stored (201) and the other refused (409) with nothing stored
        assert sorted(statuses.values()) == [201, 409]
        assert system.version("IA") + system.version("IB") == 3
        # and afterwards appends and every view read answer as usual
        for pid in ("IA", "IB"):
            url = f"/api/v1/patients/{pid}"
            assert client.post(f"{url}/events", json=ctc(), headers=headers).status_code == 201
            assert client.get(f"{url}/ctc", headers=headers).status_code == 200
            assert client.get(url, headers=headers).status_code == 200


# -- stores made before the index ---------------------------------------------------------------


def raw_sql(store: StoreConfig, *statements: str) -> None:
    """Change the store behind the application's back (what an older version left behind)."""
    if store.database_url:
        with psycopg.connect(store.database_url, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {store.schema}")
            for statement in statements:
                conn.execute(statement.replace("stored_event", "oncoledger_event"))
        return
    assert store.sqlite_path
    with sqlite3.connect(store.sqlite_path) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def legacy_store(store: StoreConfig) -> Iterator[StoreConfig]:
    """A store with IA (an event with the shared id) and IB, as made before the index."""
    with OncoLedger(store) as system:
        system.append("IA", [REG, ctc(event_id=SHARED)], actor="a", source="cli")
        system.append("IB", [REG], actor="a", source="cli")
    raw_sql(store, "DROP TABLE stored_event_ids")
    yield store


def test_an_older_store_opens_and_its_ids_are_indexed(legacy_store: StoreConfig) -> None:
    with OncoLedger(legacy_store) as system:
        # when it is opened, the stored ids are indexed: the old id cannot go to another stream
        with pytest.raises(Conflict):
            system.append("IB", [ctc(event_id=SHARED)], actor="a", source="cli")
        assert system.version("IB") == 1
        # and the stream that holds it still takes a retry of it
        assert not system.append("IA", [ctc(event_id=SHARED)], actor="a", source="cli")[0].created


def test_ids_reused_before_the_index_existed_never_stall_the_views(
    legacy_store: StoreConfig,
) -> None:
    # given an older store where IB's stream got IA's event id (copied as IB version 2)
    raw_sql(
        legacy_store,
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "SELECT 'IB', 2, topic, state FROM stored_events "
        "WHERE originator_id = 'IA' AND originator_version = 2",
    )
    # when it is opened and the views are built from scratch
    with OncoLedger(legacy_store) as system:
        assert system.views.rebuild() == 4
        # then every stored event is in the views, and both patients read
        assert system.views.status()["behind"] == 0
        assert system.patient("IB").events == 2
        assert len(system.audit(limit=10).entries) == 4
