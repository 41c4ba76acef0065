"""The cohort index catches up by itself (SQLite and PostgreSQL).

An import killed with SIGKILL partway leaves events stored that the views never saw. A server
started afterwards catches the views up before it serves, and every cohort read (and every read
of one patient's row) catches up first, so `GET /api/v1/patients?count=true` counts every stored
patient and `GET /api/v1/patients/{id}` shows every acknowledged write, with no per-patient read
needed to set it off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tamper import raw

from domain.codec import decode_entry
from domain.ledger.application import Ledger, StoreConfig
from projections.root import OncoLedger

PATIENTS = 4000


def _events_table(store: StoreConfig) -> str:
    return "oncoledger_events" if store.is_postgres else "stored_events"


def _registered(store: StoreConfig) -> set[str]:
    rows = raw(
        store,
        f"SELECT originator_id FROM {_events_table(store)} WHERE originator_version = 1",
    )
    return {str(r[0]) for r in rows}


def _import_file(path: Path) -> None:
    with path.open("w") as out:
        for n in range(PATIENTS):
            pid = f"IMP{n:05d}"
            registration = {"type": "patient_registered", "occurred": "2020-01-01", "sex": "male"}
            draw = {"type": "ctc_count", "occurred": "2021-01-01", "count": 2}
            for event in (registration, draw):
                out.write(json.dumps({"patient_id": pid, **event}) + "\n")


def _env(store: StoreConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
    for name, value in (
        ("ONCOLEDGER_DB", store.sqlite_path),
        ("ONCOLEDGER_DATABASE_URL", store.database_url),
        ("ONCOLEDGER_DATABASE_SCHEMA", store.schema),
    ):
        if value:
            env[name] = value
    return env


def test_serve_after_a_killed_import_counts_every_stored_patient(
    store: StoreConfig, tmp_path: Path, serve_process: Callable[[StoreConfig], str]
) -> None:
    # given a store, a token, and an import of many patients killed partway with SIGKILL
    with OncoLedger(store) as system:
        token = system.tokens.create("reader", "reader")
    lines = tmp_path / "cohort.jsonl"
    _import_file(lines)
    importer = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "import", str(lines)],
        cwd=Path(__file__).resolve().parents[2],
        env=_env(store),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while len(_registered(store)) < 200 and importer.poll() is None:
            time.sleep(0.02)
    finally:
        importer.send_signal(signal.SIGKILL)
        importer.wait()
    assert importer.returncode == -signal.SIGKILL, "the import ended before it was killed"
    stored = _registered(store)
    assert 200 <= len(stored) < PATIENTS
    # when a server is started
    url = serve_process(store)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        # then the cohort index counts every stored patient, with no per-patient read before
        page = http.get("/api/v1/patients", params={"count": "true", "limit": 1000})
        assert page.status_code == 200, page.text
        assert page.json()["total"] == len(stored)
        last = max(stored)
        row = http.get(f"/api/v1/patients/{last}")
        assert row.status_code == 200, row.text
        # and a write stored behind the server's back (another process, views not caught up)
        # shows in the patient's row at once
        ledger = Ledger(store)
        try:
            entry = decode_entry(
                {"type": "ctc_count", "patient_id": last, "occurred": "2022-01-01", "count": 0}
            )
            ledger.append(last, [entry], actor="t", source="cli")
            version = ledger.version(last)
        finally:
            ledger.close()
        again = http.get(f"/api/v1/patients/{last}")
        assert again.status_code == 200 and again.json()["events"] == version
        assert again.json()["ctc_latest_per_7_5_ml"] == 0
