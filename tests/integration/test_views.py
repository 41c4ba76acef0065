"""Stored read models: read-your-writes, rebuild to identical content, crash and resume, as_of."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from domain.demo import record_demo
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger
from projections.views import DROP

TABLES = tuple(reversed(DROP))


def dump(system: OncoLedger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view table, in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with system.views.db.transaction() as cur:
        for table in TABLES:
            cur.execute(f"SELECT * FROM {table}")
            out[table] = sorted(tuple(row) for row in cur.fetchall())
    return out


def test_a_write_is_readable_as_soon_as_the_command_returns(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        system.register("P1", {"occurred": "2020-01-01", "sex": "male"}, actor="a", source="cli")
        system.append(
            "P1",
            [
                {
                    "type": "diagnosis_confirmed",
                    "occurred": "2020-01-05",
                    "histology": "adenocarcinoma",
                },
                {"type": "staging", "occurred": "2020-01-06", "t": "T2", "n": "N0", "m": "M0"},
                {"type": "ctc_count", "occurred": "2020-01-07", "count": 3, "blood_volume_ml": 10},
            ],
            actor="a",
            source="cli",
        )
        stage = system.read("P1", "stage")
        ctc = system.read("P1", "ctc")
        row = system.patient("P1")
    assert stage.current.tnm == "cT2N0M0"
    assert stage.current.stage_group == "IIB"
    assert ctc.draws[0].per_7_5_ml == 2.25
    assert (row.stage_group, row.histology, row.events) == ("IIB", "adenocarcinoma", 4)


def test_rebuild_gives_identical_content(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        record_demo(system.ledger, actor="demo")
        system.views.catch_up()
        before = dump(system)
        system.views.rebuild()
        after = dump(system)
    assert before == after
    assert len(before["ol_events"]) == 62
    assert len(before["ol_patients"]) == 3


def test_an_interrupted_catch_up_resumes_to_the_same_views(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        record_demo(system.ledger, actor="demo")
        system.views.rebuild()
        clean = dump(system)

        system.views.drop()
        system.views.create()

        def crash(applied: int, position: int) -> None:
            if applied >= 10:
                raise KeyboardInterrupt("killed")

        with pytest.raises(KeyboardInterrupt):
            system.views.catch_up(progress=crash, batch=5)
        assert system.views.status()["position"] == 10
        system.views.catch_up(batch=7)
        assert dump(system) == clean


_KILLABLE = """
import sys, time
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger
config = StoreConfig(sqlite_path=sys.argv[1] or None, database_url=sys.argv[2] or None,
                     schema=sys.argv[3] or None)
system = OncoLedger(config)
def slow(applied, position):
    print(position, flush=True)
    time.sleep(0.05)
system.views.drop(); system.views.create()
system.views.catch_up(progress=slow, batch=2)
"""


def test_a_killed_rebuild_then_catch_up_equals_a_clean_rebuild(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        record_demo(system.ledger, actor="demo")
        system.views.rebuild()
        clean = dump(system)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLABLE,
            store.sqlite_path or "",
            store.database_url or "",
            store.schema or "",
        ],
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(5):  # let it apply a few batches, then kill it without warning
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with OncoLedger(store) as system:
        status = system.views.status()
        assert 0 < status["position"] < status["head"]
        system.views.catch_up()
        assert dump(system) == clean


def test_as_of_equals_a_store_that_never_received_the_later_events(
    store: StoreConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    early = [
        {
            "type": "diagnosis_confirmed",
            "occurred": "2020-01-05",
            "histology": "squamous_cell_carcinoma",
        },
        {"type": "staging", "occurred": "2020-01-06", "t": "T3", "n": "N1", "m": "M0"},
        {"type": "ctc_count", "occurred": "2020-01-07", "count": 6},
        {
            "type": "imaging",
            "occurred": "2020-01-08",
            "modality": "ct",
            "region": "chest",
            "lesions": [{"lesion_id": "L1", "site": "esophagus", "dimensions_mm": [50]}],
        },
    ]
    late = [
        {"type": "ctc_count", "occurred": "2020-04-07", "count": 1},
        {"type": "staging", "occurred": "2020-04-08", "t": "T2", "n": "N0", "m": "M0"},
        {
            "type": "imaging",
            "occurred": "2020-04-09",
            "modality": "ct",
            "region": "chest",
            "lesions": [{"lesion_id": "L1", "site": "esophagus", "dimensions_mm": [30]}],
        },
        {"type": "death", "occurred": "2020-09-01", "cause": "cancer"},
    ]
    registration = {"occurred": "2020-01-01", "sex": "female", "birth_year": 1950}
    other = StoreConfig(sqlite_path=str(tmp_path_factory.mktemp("other") / "ledger.db"))
    with OncoLedger(store) as full, OncoLedger(other) as partial:
        for system in (full, partial):
            system.register("P1", registration, actor="a", source="cli")
            system.append("P1", early, actor="a", source="cli")
        cut = datetime.now(UTC)
        time.sleep(0.01)
        full.append("P1", late, actor="a", source="cli")
        full.retract("P1", full.history("P1")[2].event_id, reason="wrong", actor="a", source="cli")
        for view in ("stage", "ctc", "response", "survival"):
            then = msgspec.to_builtins(full.read("P1", view, as_of=cut))
            never = msgspec.to_builtins(partial.read("P1", view))
            assert _without_ids(then) == _without_ids(never), view
        by_version = msgspec.to_builtins(full.read("P1", "stage", upto=5))
        assert _without_ids(by_version) == _without_ids(
            msgspec.to_builtins(partial.read("P1", "stage"))
        )
        assert len(full.history("P1", as_of=cut)) == 5
        assert full.read("P1", "survival").status == "dead"


def _without_ids(value: Any) -> Any:
    """Event ids differ between two stores that recorded the same bodies."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("event_id", "event_ids")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def test_views_left_from_another_ledger_file_are_rebuilt(sqlite_store: StoreConfig) -> None:
    # given views built from a ledger file that is then replaced by a smaller one
    with OncoLedger(sqlite_store) as system:
        record_demo(system.ledger, actor="demo")
        system.views.catch_up()
    assert sqlite_store.sqlite_path is not None
    os.remove(sqlite_store.sqlite_path)
    with OncoLedger(sqlite_store) as system:
        system.register("S2", {"occurred": "2020-01-01", "sex": "female"}, actor="a", source="cli")
    # when the product opens it again, then the views show the new ledger, not the old one
    with OncoLedger(sqlite_store) as system:
        rows = system.patients(count=True)
        assert [p.patient_id for p in rows.patients] == ["S2"]
        assert system.views.status()["behind"] == 0
