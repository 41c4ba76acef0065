"""Real processes for the reliability tests: `oncoledger serve` and `oncoledger projections run`
started and killed by their own pids, a load of concurrent HTTP clients on loopback, and the
checks that follow a crash (every acknowledged event stored once, versions contiguous, chains
verified by `oncoledger verify`, the views equal to a rebuild into a fresh views store). Not a
test module."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import msgspec

from domain.ledger.application import StoreConfig
from projections import readmodels
from projections.root import OncoLedger

ROOT = Path(__file__).resolve().parent.parent
CLI = (sys.executable, "-m", "cli.main")
BOUND = 120.0  # seconds: a hung process fails the test instead of hanging the suite
V1 = "/api/v1"


def environment(config: StoreConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
    for name, value in (
        ("ONCOLEDGER_DB", config.sqlite_path),
        ("ONCOLEDGER_DATABASE_URL", config.database_url),
        ("ONCOLEDGER_DATABASE_SCHEMA", config.schema),
        ("ONCOLEDGER_CIPHER_KEY", config.cipher_key),
    ):
        if value:
            env[name] = value
    return env


def wait_until(condition: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"not within {bound:.0f} s: {what}"
        time.sleep(0.05)


@dataclass
class Processes:
    """Every process a test started; each in a session of its own, so that a server with
    several workers is stopped (or killed) as a whole, by its own process group id."""

    config: StoreConfig
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        log = tempfile.TemporaryFile()  # noqa: SIM115 - a file, never a pipe that could fill
        process = subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            env=environment(self.config),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        process.log = log  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def serve(self, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
        """`oncoledger serve` on a free port; returns it and its URL once it answers."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        process = self._start("serve", "--port", str(port), *extra)
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert process.poll() is None, f"serve exited: {output(process)}"
            try:
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, "serve answers /health")
        return process, url

    def projector(self, *extra: str) -> subprocess.Popen[bytes]:
        """`oncoledger projections run`, once it says it runs (its signal handlers set)."""
        process = self._start("projections", "run", "--poll", "0.02", *extra)
        wait_until(lambda: b"projector running" in output(process).encode(), "projector starts")
        return process

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=ROOT,
            env=environment(self.config),
            capture_output=True,
            text=True,
            timeout=BOUND,
        )

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL to the process and every worker it started (its own process group)."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(BOUND)

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(BOUND)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(BOUND)

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(BOUND)
            process.log.close()  # type: ignore[attr-defined]


def output(process: subprocess.Popen[bytes]) -> str:
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return str(log.read().decode(errors="replace"))


@contextmanager
def processes(config: StoreConfig) -> Iterator[Processes]:
    started = Processes(config)
    try:
        yield started
    finally:
        started.close()


# -- load ---------------------------------------------------------------------------------------


@dataclass
class Load:
    """Concurrent clients on loopback, each appending CTC counts to a patient of its own, one
    request in flight each, until stopped, out of requests, or the server is gone."""

    url: str
    token: str
    patients: list[str]
    per_client: int = 40
    acknowledged: dict[str, dict[str, int]] = field(default_factory=dict)  # pid: id -> version
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        with self._lock:
            return sum(len(a) for a in self.acknowledged.values())

    def start(self) -> Load:
        for pid in self.patients:
            self.acknowledged.setdefault(pid, {})
            thread = threading.Thread(target=self._client, args=(pid,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _client(self, pid: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            for n in range(self.per_client):
                if self._stop.is_set():
                    return
                event_id = str(uuid.uuid4())
                body = {"type": "ctc_count", "occurred": "2016-06-01", "count": n}
                try:
                    answer = http.post(
                        f"{V1}/patients/{pid}/events", json=body | {"event_id": event_id}
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 201:
                    with self._lock:
                        self.acknowledged[pid][event_id] = int(answer.json()["version"])

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(BOUND)
            assert not thread.is_alive(), "a load client hung"
        self._threads = []


def register(config: StoreConfig, patients: list[str]) -> str:
    """Register the patients; return an admin token."""
    with OncoLedger(config) as system:
        for pid in patients:
            system.register(
                pid,
                {"occurred": "2016-04-26", "sex": "female", "birth_year": 1950},
                actor="nurse.a",
                source="cli",
            )
        return system.tokens.create(f"load-{uuid.uuid4().hex[:6]}", "admin")


# -- checks -------------------------------------------------------------------------------------


def assert_stored_exactly_once(
    config: StoreConfig, acknowledged: dict[str, dict[str, int]]
) -> None:
    """Every acknowledged event stored once, at the version its receipt said; versions
    contiguous; nothing stored twice."""
    with OncoLedger(config, project_inline=False) as system:
        for pid, acked in acknowledged.items():
            stored = [str(e.event_id) for e in system.ledger.history(pid)]
            assert len(stored) == len(set(stored)) == system.ledger.version(pid), pid
            for event_id, version in acked.items():
                assert stored[version - 1] == event_id, f"{pid}: {event_id} not at v{version}"
            versions = [v for p, v, _ in system.ledger.scan(pid) if p == pid]
            assert versions == list(range(1, len(stored) + 1)), pid


def assert_chains_verify(procs: Processes) -> None:
    verified = procs.run("verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def read_models(system: OncoLedger, patients: list[str]) -> dict[str, Any]:
    """What the views answer: the cohort list, and each patient's row and stored views."""
    out: dict[str, Any] = {
        "cohort": msgspec.to_builtins(system.patients(limit=500).patients),
    }
    for pid in patients:
        out[pid] = {
            "row": msgspec.to_builtins(system.views.patient(pid)),
            **{view: system.views.doc(pid, view) for view in readmodels.PATIENT_VIEWS},
        }
    return out


def assert_views_equal_a_fresh_rebuild(config: StoreConfig, patients: list[str]) -> None:
    """The views as the projectors left them (caught up) equal a rebuild into a views store of
    its own: a copy of the SQLite store without its views file; on PostgreSQL, whose views
    share the schema, views rebuilt from nothing in place after the first answers are taken."""
    with OncoLedger(config, project_inline=False) as system:
        status = system.views.status()
        assert status["lag"] == 0, status
        kept = read_models(system, patients)
        if config.database_url:
            system.views.rebuild()
            assert read_models(system, patients) == kept
            return
    assert config.sqlite_path
    with tempfile.TemporaryDirectory(prefix="fresh-views-") as directory:
        fresh = Path(directory) / "copy.db"
        source, target = sqlite3.connect(config.sqlite_path), sqlite3.connect(fresh)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        key = Path(config.sqlite_path + ".key")
        if key.exists():
            Path(f"{fresh}.key").write_bytes(key.read_bytes())
        copy = replace(config, sqlite_path=str(fresh))
        assert not Path(f"{fresh}.views").exists()
        with OncoLedger(copy, project_inline=False) as system:
            system.views.rebuild()
            assert read_models(system, patients) == kept


def projection_status(url: str, token: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{url}{V1}/projections/status", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status
