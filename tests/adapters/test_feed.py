"""The live feed: `GET /api/v1/events` (pages, long poll), its SSE stream, `oncoledger follow`.

The service-level tests run on SQLite and PostgreSQL; so does the live test, which starts a
real server process on loopback, connects an SSE client and a long-polling client before
8 concurrent writers append, and checks that both receive every event exactly once, in
recording order, across a disconnect. Every wait is bounded in time and in count.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from api.app import create_app
from cli.main import cli
from domain.errors import ValidationFailed
from domain.ledger.application import StoreConfig
from projections import feed as feed_module
from projections.root import OncoLedger

WRITERS = 8
EVENTS_PER_WRITER = 15
DEADLINE_SECONDS = 180


def _register(ledger: OncoLedger, patient_id: str) -> None:
    ledger.register(
        patient_id, {"sex": "male", "occurred": "2020-01-01"}, actor="nurse", source="cli"
    )


def _ctc(ledger: OncoLedger, patient_id: str, count: int) -> None:
    ledger.append(
        patient_id,
        [{"type": "ctc_count", "occurred": "2020-02-01", "count": count}],
        actor="nurse",
        source="cli",
    )


# -- the service -------------------------------------------------------------------------------


def test_pages_follow_recording_order_with_audit_positions(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        for pid in ("B", "A"):
            _register(ledger, pid)
        _ctc(ledger, "A", 4)
        _ctc(ledger, "B", 2)
        first = ledger.feed.page(0, 3)
        second = ledger.feed.page(first.next_after, 3)
        audit = ledger.audit(limit=100)
        history = {str(e.event_id): e for pid in ("A", "B") for e in ledger.history(pid)}

    events = first.events + second.events
    assert [e["position"] for e in events] == [a.position for a in audit.entries]
    assert [e["event_id"] for e in events] == [str(a.event_id) for a in audit.entries]
    assert [e["patient_id"] for e in events] == ["B", "A", "A", "B"]
    assert first.next_after == events[2]["position"]
    assert second.next_after == events[3]["position"]
    # Each event is its flat JSON form, exactly as history shows it, plus its position.
    for event in events:
        body = {k: v for k, v in event.items() if k != "position"}
        assert body == msgspec.json.decode(msgspec.json.encode(history[event["event_id"]]))


def test_after_is_exclusive_and_the_head_gives_an_empty_page(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        _register(ledger, "P1")
        _ctc(ledger, "P1", 1)
        head = ledger.feed.head()
        assert [e["position"] for e in ledger.feed.page(head - 1).events] == [head]
        at_head = ledger.feed.page(head)
        assert at_head.events == [] and at_head.next_after == head
        with pytest.raises(ValidationFailed) as beyond:
            ledger.feed.page(head + 1)
        assert beyond.value.field == "after" and beyond.value.rule == "beyond_head"
        for bad in (0, 1001):
            with pytest.raises(ValidationFailed) as wrong:
                ledger.feed.page(0, bad)
            assert wrong.value.field == "limit"


def test_an_empty_ledger_pages_empty_from_zero(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        page = ledger.feed.page(0)
    assert page.events == [] and page.next_after == 0


def test_a_blocked_follower_is_woken_by_a_write_in_this_process(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polling the store is switched off: only the in-process wake can end the wait early.
    monkeypatch.setattr(feed_module, "POLL_SECONDS", 3600.0)
    with OncoLedger(store) as ledger:
        _register(ledger, "P1")
        head = ledger.feed.head()
        started = threading.Event()

        def write() -> None:
            started.wait(10)
            time.sleep(0.2)  # most likely while the follower waits; correct either way
            _ctc(ledger, "P1", 3)

        writer = threading.Thread(target=write)
        writer.start()
        started.set()
        woken = ledger.feed.wait(head, 60)
        writer.join(10)
        assert woken
        assert [e["count"] for e in ledger.feed.page(head).events] == [3]
        # Nothing newer: the wait ends by its timeout and says so.
        assert not ledger.feed.wait(ledger.feed.head(), 0.05)


def test_writes_by_another_process_are_found_by_polling(store: StoreConfig) -> None:
    # A second OncoLedger stands for another process: its writes wake nobody here.
    with OncoLedger(store) as follower, OncoLedger(store) as writer:
        _register(writer, "P1")
        head = follower.feed.head()
        threading.Timer(0.2, _ctc, args=(writer, "P1", 5)).start()
        assert follower.feed.wait(head, 60)
        assert [e["count"] for e in follower.feed.page(head).events] == [5]


# -- the API through the test client -------------------------------------------------------------


@pytest.fixture
def api(store: StoreConfig) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    with OncoLedger(store) as ledger:
        tokens = {
            role: ledger.tokens.create(f"t-{role}", role)
            for role in ("reader", "clinician", "auditor", "admin")
        }
        _register(ledger, "P1")
        _ctc(ledger, "P1", 4)
    with TestClient(create_app(store)) as client:
        yield client, tokens


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_roles(api: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, tokens = api
    for path in ("/api/v1/events", "/api/v1/events/stream"):
        assert client.get(path).status_code == 401
        for role in ("reader", "clinician"):
            response = client.get(path, headers=_auth(tokens[role]))
            assert response.status_code == 403, (path, role)
            assert response.json()["extra"]["rule"] == "role"
    for role in ("auditor", "admin"):
        page = client.get("/api/v1/events", headers=_auth(tokens[role])).json()
        assert [e["type"] for e in page["events"]] == ["patient_registered", "ctc_count"]
        assert page["next_after"] == page["events"][-1]["position"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=-1", "after"),
        ("after=x", "after"),
        ("after=99", "after"),  # beyond the head: documented 400, not an empty page
        ("after=9223372036854775807", "after"),
        ("after=9223372036854775808", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("wait=-1", "wait"),
        ("wait=61", "wait"),
        ("wait=soon", "wait"),
    ],
)
def test_api_bad_input_is_400_naming_the_field(
    api: tuple[TestClient[Any], dict[str, str]], query: str, field: str
) -> None:
    client, tokens = api
    response = client.get(f"/api/v1/events?{query}", headers=_auth(tokens["auditor"]))
    assert response.status_code == 400, response.text
    assert response.json()["extra"]["field"] == field


@pytest.mark.parametrize(
    ("headers", "query", "field"),
    [
        ({"Last-Event-ID": "abc"}, "", "Last-Event-ID"),
        ({"Last-Event-ID": "99"}, "", "after"),
        ({}, "?after=99", "after"),
        ({}, "?after=-3", "after"),
        ({"Last-Event-ID": "9223372036854775807"}, "", "after"),
        ({"Last-Event-ID": "99999999999999999999"}, "", "Last-Event-ID"),
    ],
)
def test_stream_bad_start_is_400_before_streaming(
    api: tuple[TestClient[Any], dict[str, str]],
    headers: dict[str, str],
    query: str,
    field: str,
) -> None:
    client, tokens = api
    response = client.get(
        f"/api/v1/events/stream{query}", headers={**_auth(tokens["admin"]), **headers}
    )
    assert response.status_code == 400
    assert response.json()["extra"]["field"] == field


def test_every_page_served_is_an_access_log_entry(
    api: tuple[TestClient[Any], dict[str, str]], store: StoreConfig
) -> None:
    client, tokens = api
    headers = _auth(tokens["auditor"])
    after, pages = 0, 0
    while True:
        page = client.get(f"/api/v1/events?after={after}&limit=1", headers=headers).json()
        pages += 1
        if not page["events"]:
            break
        after = page["next_after"]
    assert pages == 3  # two events one per page, then the empty page at the head
    with OncoLedger(store) as ledger:
        entries = ledger.access_log.query(None, "t-auditor", None, None, 1000).entries
    assert [e.resource for e in entries].count("feed") == pages
    assert all(e.channel == "api" and e.patient_id is None for e in entries)


def test_long_poll_is_answered_by_a_write_in_the_server_process(
    api: tuple[TestClient[Any], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens = api
    monkeypatch.setattr(feed_module, "POLL_SECONDS", 3600.0)  # only the wake can answer
    headers = _auth(tokens["admin"])
    head = client.get("/api/v1/events", headers=headers).json()["next_after"]
    ledger: OncoLedger = client.app.state.ledger
    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(client.get, f"/api/v1/events?after={head}&wait=60", headers=headers)
        time.sleep(0.3)  # let the poll start waiting; the result does not depend on it
        _ctc(ledger, "P1", 7)
        page = poll.result(timeout=90).json()
    assert [e["count"] for e in page["events"]] == [7]


def test_stream_resumes_after_last_event_id_which_wins_over_after(
    api: tuple[TestClient[Any], dict[str, str]],
    store: StoreConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api import feed as feed_routes

    monkeypatch.setattr(feed_routes, "STREAM_LIFETIME_SECONDS", 0.5)  # so the body ends
    client, tokens = api
    headers = {**_auth(tokens["auditor"]), "Last-Event-ID": "1"}
    response = client.get("/api/v1/events/stream?after=0", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = [m for m in response.text.replace("\r\n", "\n").split("\n\n") if m.strip()]
    assert messages[0].startswith(": oncoledger feed")  # the opening comment, then events
    ids = [line[4:] for m in messages for line in m.splitlines() if line.startswith("id: ")]
    data = [
        json.loads(line[6:])
        for m in messages
        for line in m.splitlines()
        if line.startswith("data: ")
    ]
    assert ids == ["2"]
    assert [(e["position"], e["type"]) for e in data] == [(2, "ctc_count")]
    with OncoLedger(store) as ledger:
        entries = ledger.access_log.query(None, "t-auditor", None, None, 1000).entries
    assert [e.resource for e in entries] == ["feed"]  # one batch sent, one entry


# -- a real server on loopback, SSE and long poll under 8 concurrent writers ------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _store_env(store: StoreConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
    if store.database_url:
        env["ONCOLEDGER_DATABASE_URL"] = store.database_url
        env["ONCOLEDGER_DATABASE_SCHEMA"] = store.schema or ""
    else:
        env["ONCOLEDGER_DB"] = str(store.sqlite_path)
    return env


@pytest.fixture
def live_server(store: StoreConfig) -> Iterator[tuple[str, dict[str, str]]]:
    with OncoLedger(store) as ledger:
        tokens = {
            "auditor": ledger.tokens.create("follower", "auditor"),
            "clinician": ledger.tokens.create("writer", "clinician"),
        }
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=_store_env(store),
        cwd=Path(__file__).resolve().parents[2],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server process exited"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield base, tokens
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _sse_events(
    base: str, token: str, last_id: int | None, want: int, connected: threading.Event
) -> list[dict[str, Any]]:
    """Read `want` events from the stream, then disconnect."""
    headers = _auth(token)
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    timeout = httpx.Timeout(10.0, read=30.0)
    with httpx.stream(
        "GET", f"{base}/api/v1/events/stream", headers=headers, timeout=timeout
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id: str | None = None
        data: list[str] = []
        for line in response.iter_lines():
            assert time.monotonic() < deadline, "the stream did not deliver in time"
            if line.startswith(":") or line.startswith("retry:"):
                connected.set()  # the stream's opening comment: the client is connected
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                event = json.loads("\n".join(data))
                assert str(event["position"]) == event_id
                received.append(event)
                data, event_id = [], None
                if len(received) >= want:
                    break
    return received


def test_live_feed_under_concurrent_writers(live_server: tuple[str, dict[str, str]]) -> None:
    base, tokens = live_server
    writer_headers = _auth(tokens["clinician"])
    with httpx.Client(base_url=base, headers=_auth(tokens["auditor"]), timeout=30) as c:
        start = c.get("/api/v1/events").json()["next_after"]
    total = WRITERS * (1 + EVENTS_PER_WRITER)
    sse_connected = threading.Event()
    sse_result: dict[str, Any] = {}
    poll_result: dict[str, Any] = {}

    def follow_sse() -> None:
        # Connect before the writes, drop the connection mid-way, resume with Last-Event-ID.
        first = _sse_events(base, tokens["auditor"], None, total // 3, sse_connected)
        rest = _sse_events(
            base, tokens["auditor"], first[-1]["position"], total - len(first), threading.Event()
        )
        sse_result["events"] = first + rest

    def follow_long_poll() -> None:
        received: list[dict[str, Any]] = []
        after = start
        deadline = time.monotonic() + DEADLINE_SECONDS
        with httpx.Client(
            base_url=base, headers=_auth(tokens["auditor"]), timeout=httpx.Timeout(10.0, read=45.0)
        ) as client:
            while len(received) < total:
                assert time.monotonic() < deadline, "the long poll did not deliver in time"
                page = client.get(f"/api/v1/events?after={after}&limit=7&wait=20").json()
                received.extend(page["events"])
                after = page["next_after"]
        poll_result["events"] = received

    def write(n: int) -> None:
        patient = f"W{n}"
        with httpx.Client(base_url=base, headers=writer_headers, timeout=60) as client:
            reply = client.post(
                "/api/v1/patients",
                json={"patient_id": patient, "sex": "female", "occurred": "2021-01-01"},
            )
            assert reply.status_code == 201, reply.text
            for i in range(EVENTS_PER_WRITER):
                reply = client.post(
                    f"/api/v1/patients/{patient}/events",
                    json={"type": "ctc_count", "occurred": "2021-02-01", "count": i},
                )
                assert reply.status_code == 201, reply.text

    with ThreadPoolExecutor(2 + WRITERS) as pool:
        sse = pool.submit(follow_sse)
        assert sse_connected.wait(60), "the SSE client did not connect"
        poll = pool.submit(follow_long_poll)
        writers = [pool.submit(write, n) for n in range(WRITERS)]
        for future in writers:
            future.result(timeout=DEADLINE_SECONDS)
        sse.result(timeout=DEADLINE_SECONDS)
        poll.result(timeout=DEADLINE_SECONDS)

    # What the store holds, in recording order, paged independently.
    stored: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, headers=_auth(tokens["auditor"]), timeout=30) as c:
        after = start
        while True:
            page = c.get(f"/api/v1/events?after={after}&limit=1000").json()
            if not page["events"]:
                break
            stored.extend(page["events"])
            after = page["next_after"]
    assert len(stored) == total
    expected = [(e["position"], e["event_id"]) for e in stored]
    for name, result in (("sse", sse_result), ("long poll", poll_result)):
        got = [(e["position"], e["event_id"]) for e in result["events"]]
        assert got == expected, f"{name}: not every event once, in order"
    # Each writer's events arrived in its own stream order too.
    for n in range(WRITERS):
        versions = [e["version"] for e in sse_result["events"] if e["patient_id"] == f"W{n}"]
        assert versions == list(range(1, EVENTS_PER_WRITER + 2))


# -- the CLI ------------------------------------------------------------------------------


def test_follow_prints_json_lines_from_a_position(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    with OncoLedger(StoreConfig(sqlite_path=db)) as ledger:
        _register(ledger, "P1")
        _ctc(ledger, "P1", 4)
        _ctc(ledger, "P1", 2)
    result = CliRunner().invoke(cli, ["--db", db, "follow", "--after", "1", "--count", "2"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["position"], e["count"]) for e in lines] == [(2, 4), (3, 2)]
    log = CliRunner().invoke(cli, ["--db", db, "access-log", "--json"])
    assert [e["resource"] for e in json.loads(log.output)["entries"]][:1] == ["feed"]
    beyond = CliRunner().invoke(cli, ["--db", db, "follow", "--after", "9"])
    assert beyond.exit_code == 2
    assert "beyond the ledger's latest position 3" in beyond.output
    missing = CliRunner().invoke(cli, ["--db", str(tmp_path / "nope.db"), "follow"])
    assert missing.exit_code == 3
    assert not (tmp_path / "nope.db").exists()


def _oncoledger(db: str, *args: str) -> list[str]:
    return [sys.executable, "-c", "from cli.main import main; main()", "--db", db, *args]


def test_follow_streams_new_events_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    with OncoLedger(StoreConfig(sqlite_path=db)) as ledger:
        _register(ledger, "P1")
    process = subprocess.Popen(
        _oncoledger(db, "follow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")},
    )
    try:
        lines: list[dict[str, Any]] = []

        def read() -> None:
            assert process.stdout is not None
            for _ in range(3):
                lines.append(json.loads(process.stdout.readline()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # `follow` starts at the head: write until it has seen three events (bounded).
        with OncoLedger(StoreConfig(sqlite_path=db)) as ledger:
            for count in range(200):
                if not reader.is_alive():
                    break
                _ctc(ledger, "P1", count)
                reader.join(0.5)
        assert not reader.is_alive(), "follow printed nothing"
        counts = [e["count"] for e in lines]
        assert counts == sorted(counts) and len(set(counts)) == 3
        assert [e["type"] for e in lines] == ["ctc_count"] * 3
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert b"Traceback" not in err and err.strip() == b""


def test_follow_stops_cleanly_when_the_pipe_closes(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    with OncoLedger(StoreConfig(sqlite_path=db)) as ledger:
        _register(ledger, "P1")
        # More than a pipe holds, so `follow` is still writing when the reader leaves.
        ledger.append(
            "P1",
            [{"type": "ctc_count", "occurred": "2020-02-01", "count": n} for n in range(600)],
            actor="nurse",
            source="cli",
        )
    follow = subprocess.Popen(
        _oncoledger(db, "follow", "--after", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")},
    )
    assert follow.stdout is not None
    first = follow.stdout.readline()
    follow.stdout.close()  # the reader goes away, as `| head -1` does
    follow.wait(timeout=30)
    assert follow.stderr is not None
    err = follow.stderr.read()
    assert json.loads(first)["position"] == 1
    assert follow.returncode == 0
    assert b"Traceback" not in err and err.strip() == b""
