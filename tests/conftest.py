"""Shared fixtures. Stores: every scenario runs on SQLite, and on PostgreSQL when CI provides one;
over a store, the one Api and the one Cli helper (tests/helpers.py).

The suite is split by kind: unit/ (pure, no database), integration/ (through the service root,
SQLite and PostgreSQL), adapters/ (REST through Litestar's test client or a served process, the
CLI through CliRunner, pages, browser)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from helpers import Api, Cli, start_api

from domain.ledger.application import StoreConfig

PG_URL = os.environ.get("ONCOLEDGER_TEST_DATABASE_URL")
PG_SKIP_REASON = (
    "PostgreSQL tests need ONCOLEDGER_TEST_DATABASE_URL (set by .ci/run when a server is up)"
)


def _pg_schema() -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreConfig]:
    """A fresh, empty store: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield StoreConfig(sqlite_path=str(tmp_path_factory.mktemp("db") / "ledger.db"))
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    for schema in _pg_schema():
        yield StoreConfig(sqlite_path=None, database_url=PG_URL, schema=schema)


@pytest.fixture
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> StoreConfig:
    return StoreConfig(sqlite_path=str(tmp_path_factory.mktemp("db") / "ledger.db"))


@pytest.fixture
def serve_process() -> Iterator[Callable[[StoreConfig], str]]:
    """Start `oncoledger serve` as a real process over a store; returns its base URL. Each
    server started is stopped (by its own pid) at the end of the test."""
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    import httpx

    started: list[subprocess.Popen[bytes]] = []

    def start(config: StoreConfig) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process, below
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
        for name, value in (
            ("ONCOLEDGER_DB", config.sqlite_path),
            ("ONCOLEDGER_DATABASE_URL", config.database_url),
            ("ONCOLEDGER_DATABASE_SCHEMA", config.schema),
            ("ONCOLEDGER_CIPHER_KEY", config.cipher_key),
        ):
            if value:
                env[name] = value
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,  # a file, not a pipe: a server that logs much must never block on it
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        while True:  # until it answers, or it has exited (then say why)
            if process.poll() is not None:
                log.seek(0)
                stderr = log.read().decode(errors="replace")
                raise AssertionError(f"serve exited with {process.returncode}: {stderr}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.1)

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the adapters' helpers over a store (tests/helpers.py) ----------------------------------------


@pytest.fixture
def api(store: StoreConfig) -> Iterator[Api]:
    """The REST API over a fresh store, with one token per role."""
    yield from start_api(store)


@pytest.fixture
def sqlite_api(sqlite_store: StoreConfig) -> Iterator[Api]:
    yield from start_api(sqlite_store)


@pytest.fixture
def run(store: StoreConfig) -> Cli:
    """`oncoledger` over a fresh store, as nurse.a."""
    return Cli(store)


@pytest.fixture
def sqlite_run(sqlite_store: StoreConfig) -> Cli:
    return Cli(sqlite_store)
