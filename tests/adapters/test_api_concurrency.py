"""Concurrent HTTP clients appending to one patient: nothing lost, nothing duplicated.

A live uvicorn server on a free port, 8 client threads with their own connections, 25 appends
each: every append answers 201, and the stream holds exactly those 200 events with versions
2..201 after the registration, and an intact hash chain.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from api.app import create_app
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

THREADS = 8
APPENDS = 25  # 50 passes too; each append re-derives the patient's views, so time grows as n²


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(store: StoreConfig) -> Iterator[tuple[str, str]]:
    """(base URL, clinician token) of a live server over `store`."""
    with OncoLedger(store) as ledger:
        token = ledger.tokens.create("nurse", "clinician")
    config = uvicorn.Config(
        create_app(store), host="127.0.0.1", port=_free_port(), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_concurrent_appends_to_one_patient(server: tuple[str, str]) -> None:
    base, token = server
    headers = {"Authorization": f"Bearer {token}"}
    registration = {"patient_id": "P1", "sex": "male", "occurred": "2016-04-26"}
    assert httpx.post(f"{base}/api/v1/patients", json=registration, headers=headers).is_success

    def client(worker: int) -> list[tuple[int, int, int]]:
        receipts = []
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            for i in range(APPENDS):
                body = {
                    "type": "ctc_count",
                    "occurred": "2016-08-30",
                    "count": i,
                    "sample_id": f"w{worker}-{i}",
                }
                response = http.post("/api/v1/patients/P1/events", json=body)
                assert response.status_code == 201, response.text
                receipts.append((worker, i, response.json()["version"]))
        return receipts

    with ThreadPoolExecutor(THREADS) as pool:
        receipts = [r for batch in pool.map(client, range(THREADS)) for r in batch]

    versions = sorted(version for _, _, version in receipts)
    assert versions == list(range(2, 2 + THREADS * APPENDS))
    with httpx.Client(base_url=base, headers=headers) as http:
        events = http.get("/api/v1/patients/P1/events").json()["events"]
        assert [e["version"] for e in events] == list(range(1, 2 + THREADS * APPENDS))
        samples = sorted(e["sample_id"] for e in events[1:])
        assert samples == sorted(f"w{w}-{i}" for w in range(THREADS) for i in range(APPENDS))
        by_version = {e["version"]: e["sample_id"] for e in events[1:]}
        assert all(by_version[v] == f"w{w}-{i}" for w, i, v in receipts)
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
        ctc = http.get("/api/v1/patients/P1/ctc").json()
        assert len(ctc["draws"]) == THREADS * APPENDS
