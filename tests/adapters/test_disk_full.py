"""A full disk under a SQLite store (a real 3 MB tmpfs) with a real `oncoledger serve` process.

A write either stores and answers 201, or stores nothing and answers 507 saying the disk is full
(never a 500, never a 409 "too busily": a full disk is not contention). A clinical read whose
access-log entry cannot be written is refused with 503. Once space is freed, the ledger holds
exactly the acknowledged events, its chains verify and the views catch up.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

NOTE = "n" * 1500  # events of ~2 KB fill the disk in a few hundred appends


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs, mounted for this test only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write zeros to `path` until the disk has no space left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)


def _free_some(path: Path, size: int) -> None:
    os.truncate(path, max(0, path.stat().st_size - size))


def test_full_disk_over_http_never_500_never_contention(
    small_disk: Path, serve_process: Callable[[StoreConfig], str]
) -> None:
    # given a ledger with one patient on a small disk, served by a real server process
    config = StoreConfig(sqlite_path=str(small_disk / "ledger.db"))
    with OncoLedger(config) as system:
        system.register("P1", {"sex": "male", "occurred": "2020-01-01"}, actor="t", source="cli")
        token = system.tokens.create("nurse", "admin")
    url = serve_process(config)
    auth = {"Authorization": f"Bearer {token}"}
    filler = small_disk / "filler"
    _fill(filler)
    _free_some(filler, 256 * 1024)
    acknowledged: list[str] = []
    refused: list[str] = []
    with httpx.Client(base_url=url, headers=auth, timeout=120) as http:
        # when appends go on until the disk is full
        for count in range(600):
            event_id = str(uuid.uuid4())
            body = {"type": "ctc_count", "occurred": "2021-01-01", "count": count % 9}
            response = http.post(
                "/api/v1/patients/P1/events", json=body | {"event_id": event_id, "note": NOTE}
            )
            # then each one is stored (201) or refused as a full disk (507), nothing else
            assert response.status_code in (201, 507), response.text
            if response.status_code == 201:
                acknowledged.append(event_id)
                continue
            error = response.json()
            assert "disk is full" in error["detail"] and "nothing was stored" in error["detail"]
            assert error["extra"]["kind"] == "storage_full"
            refused.append(event_id)
            if len(refused) >= 5:
                break
        assert acknowledged and len(refused) == 5
        # and with no space at all, a clinical read is refused: its access entry cannot be kept
        _fill(filler)
        read = http.get("/api/v1/patients/P1/ctc")
        assert read.status_code == 503, read.text
        assert "access log" in read.json()["detail"]
        assert read.json()["extra"]["rule"] == "access_log_unavailable"

        # when space is freed again
        filler.unlink()
        after = http.post(
            "/api/v1/patients/P1/events",
            json={"type": "ctc_count", "occurred": "2021-02-01", "count": 0},
        )
        assert after.status_code == 201, after.text
        # then the ledger holds exactly the acknowledged events, and reads see all of them
        history = http.get("/api/v1/patients/P1/events").json()["events"]
        stored = [e["event_id"] for e in history]
        assert stored[1 : 1 + len(acknowledged)] == acknowledged
        assert not set(refused) & set(stored)
        assert len(stored) == 1 + len(acknowledged) + 1
        ctc = http.get("/api/v1/patients/P1/ctc").json()
        assert len(ctc["draws"]) == len(acknowledged) + 1
        assert http.get("/api/v1/patients/P1").json()["events"] == len(stored)
        assert http.get("/api/v1/patients/P1/verify").json()["ok"] is True


def test_full_disk_in_the_cli_says_so_and_stores_nothing(small_disk: Path) -> None:
    # given a ledger on a disk that is then filled
    db = str(small_disk / "ledger.db")
    runner = CliRunner()
    args = ["--db", db, "patient", "register", "P1", "--sex", "male", "--on", "2020-01-01"]
    assert runner.invoke(cli, args).exit_code == 0
    _fill(small_disk / "filler")
    # when an event is recorded
    result = runner.invoke(
        cli, ["--db", db, "record", "P1", "ctc", "--on", "2021-01-01", "--count", "3"]
    )
    # then it fails with exit 1, saying the disk is full and that nothing was stored
    assert result.exit_code == 1, result.output
    assert "disk is full" in result.output and "nothing was stored" in result.output
    assert "Traceback" not in result.output and "OperationalError" not in result.output
    # and a clinical read is refused (exit 1) with the same sentence: on a disk this full SQLite
    # cannot even open the store (its shared-memory index cannot grow), so nothing is read
    read = runner.invoke(cli, ["--db", db, "ctc", "P1"])
    assert read.exit_code == 1 and "disk is full" in read.output, read.output
    assert "Traceback" not in read.output
    # and once space is freed, nothing of the refused event is in the ledger
    (small_disk / "filler").unlink()
    history = runner.invoke(cli, ["--db", db, "history", "P1", "--json"])
    assert history.exit_code == 0 and '"ctc_count"' not in history.output


def test_an_import_stops_at_the_line_a_full_disk_refused(small_disk: Path, tmp_path: Path) -> None:
    # given a file of 100 patients (two events each) and a disk with little space left
    lines = [
        json.dumps({"patient_id": f"IMP{n:04d}", "occurred": "2021-01-01", **event})
        for n in range(100)
        for event in (
            {"type": "patient_registered", "sex": "female"},
            {"type": "ctc_count", "count": 1},
        )
    ]
    file = tmp_path / "cohort.jsonl"
    file.write_text("\n".join(lines) + "\n")
    db = str(small_disk / "ledger.db")
    runner = CliRunner()
    # (a store in clear: `init` would make it encrypted, and its larger events would not fit
    # the cohort on this 3 MB disk even once space is freed)
    OncoLedger(StoreConfig(sqlite_path=db)).close()
    filler = small_disk / "filler"
    _fill(filler)
    _free_some(filler, 96 * 1024)
    # when it is imported
    result = runner.invoke(cli, ["--db", db, "import", str(file), "--json"])
    # then the import stops (exit 1) at the first line the disk refused, saying so
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    stopped = report["stopped_at"]
    assert 1 < stopped < len(lines) and "disk is full" in report["stopped_because"]
    assert f"stopped at line {stopped}" in result.stderr and "Traceback" not in result.output
    # and once space is freed, exactly the lines before it are stored
    filler.unlink()
    with OncoLedger(StoreConfig(sqlite_path=db)) as system:
        assert system.views.head() == report["stored"] == stopped - 1
    # and importing the rest from that line completes the cohort, which verifies
    rest = tmp_path / "rest.jsonl"
    rest.write_text("\n".join(lines[stopped - 1 :]) + "\n")
    again = runner.invoke(cli, ["--db", db, "import", str(rest), "--json"])
    assert again.exit_code == 0, again.output
    with OncoLedger(StoreConfig(sqlite_path=db)) as system:
        assert system.views.head() == len(lines)
        assert system.patients(count=True).total == 100
        assert system.verify().ok
