"""An export imports back into an empty store, and the result verifies (SQLite and PostgreSQL).

Each patient's export document carries its events exactly as stored. Written out as JSON Lines
and given to `import`, they rebuild every stream in an empty store: same event ids, versions,
types and clinical content, corrections pointing at the same targets, the same read models,
and chains that verify. Import assigns the server fields again (`recorded_at` is the time of
the import, `recorded_by` the importer, `source` `import`), so the hashes are the new store's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from click.testing import CliRunner

from cli.main import cli
from domain.events import SERVER_FIELDS
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger


def _env(store: StoreConfig) -> dict[str, str | None]:
    return {
        "ONCOLEDGER_DB": store.sqlite_path,
        "ONCOLEDGER_DATABASE_URL": store.database_url,
        "ONCOLEDGER_DATABASE_SCHEMA": store.schema,
    }


def _clinical(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in (*SERVER_FIELDS, "version")}


def test_an_export_imports_back_into_an_empty_store_and_verifies(
    store: StoreConfig, tmp_path: Path
) -> None:
    # given a ledger with the demo patients and a correction of each kind
    source = StoreConfig(sqlite_path=str(tmp_path / "source.db"))
    runner = CliRunner()
    with OncoLedger(source) as system:
        system.record_demo(actor="abstractor")
        first_ctc = next(e for e in system.history("CR-ESCC-001") if e.type == "ctc_count")
        second = next(e for e in system.history("CR-ESCC-001") if e.type == "imaging")
        replacement = _clinical(msgspec.to_builtins(first_ctc)) | {"count": 5}
        del replacement["event_id"], replacement["patient_id"]
        system.amend(
            "CR-ESCC-001", first_ctc.event_id, replacement, reason="typo",
            actor="dm", source="cli",
        )  # fmt: skip
        system.retract(
            "CR-ESCC-001", second.event_id, reason="wrong patient", actor="dm", source="cli"
        )
        patients = [row.patient_id for row in system.patients(limit=1000).patients]
    # when each patient is exported and the exports' events are imported into an empty store
    lines = tmp_path / "export.jsonl"
    exported: dict[str, dict[str, Any]] = {}
    with lines.open("w") as out:
        for pid in patients:
            result = runner.invoke(cli, ["--db", str(source.sqlite_path), "export", pid])
            assert result.exit_code == 0, result.output
            exported[pid] = json.loads(result.output)
            for event in exported[pid]["events"]:
                out.write(json.dumps(event) + "\n")
    env = _env(store)
    imported = runner.invoke(cli, ["--actor", "migrator", "import", str(lines), "--json"], env=env)
    # then every event is stored, nothing refused
    assert imported.exit_code == 0, imported.output
    total = sum(len(doc["events"]) for doc in exported.values())
    report = json.loads(imported.output)
    assert (report["stored"], report["failed"]) == (total, [])
    # and the new store verifies, and each stream is the exported one, server fields aside
    assert runner.invoke(cli, ["verify"], env=env).exit_code == 0
    with OncoLedger(source) as before, OncoLedger(store) as after:
        for pid, doc in exported.items():
            history = [msgspec.to_builtins(e) for e in after.history(pid)]
            assert [_clinical(e) for e in history] == [_clinical(e) for e in doc["events"]]
            assert [e["version"] for e in history] == [e["version"] for e in doc["events"]]
            assert {e["source"] for e in history} == {"import"}
            assert {e["recorded_by"] for e in history} == {"migrator"}
            for view in ("stage", "ctc", "response", "survival"):  # timeline shows who/when
                assert after.read(pid, view) == before.read(pid, view), (pid, view)
            timelines = [system.read(pid, "timeline") for system in (before, after)]
            statuses = [[(e.event_id, e.status) for e in t.events] for t in timelines]  # type: ignore[attr-defined]
            assert statuses[0] == statuses[1]
            # and the new store's own export of the patient verifies offline
            assert OncoLedger.verify_export(after.export(pid)).ok
        assert after.read("CR-ESCC-001", "ctc").draws[0].count == 5
    # and importing the same file again stores nothing new
    again = runner.invoke(cli, ["import", str(lines), "--json"], env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["duplicates"] == total
