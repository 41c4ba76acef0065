"""`oncoledger serve --workers N`: on PostgreSQL N worker processes, each with the store; on
SQLite allowed too, with one sentence saying that SQLite's single writer does not scale writes
(README "Deploying at scale"). The processes themselves are exercised in
tests/integration/test_scale_out.py."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import pytest
from helpers import Cli

from cli.serve import REUSE_PORT_LOOP, SQLITE_WORKERS_NOTE, reuse_port_loop
from domain.ledger.application import StoreConfig


def test_serve_with_several_workers_says_what_sqlite_cannot_scale(
    run: Cli, store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append(kwargs))
    several = run("serve", "--workers", "2")
    one = run("serve")
    assert [c["workers"] for c in calls] == [2, 1]
    assert SQLITE_WORKERS_NOTE not in one.stderr
    if store.is_postgres:
        assert SQLITE_WORKERS_NOTE not in several.stderr
    else:
        assert SQLITE_WORKERS_NOTE in several.stderr
        assert "one writer at a time" in several.stderr and "PostgreSQL" in several.stderr


def test_serve_reuse_port_gives_the_workers_a_socket_each_and_no_access_log_drops_its_lines(
    run: Cli, store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append(kwargs))
    run("serve", "--workers", "2", "--no-access-log")
    run("serve", "--workers", "2", "--no-reuse-port")
    run("serve", "--reuse-port")
    several, shared, one = calls
    assert several["access_log"] is False
    assert "loop" not in shared and "access_log" not in shared
    assert "loop" not in one  # one worker has its socket to itself
    # Several workers are given time to import before uvicorn's supervisor calls one hung.
    assert several["timeout_worker_healthcheck"] == shared["timeout_worker_healthcheck"] == 60
    assert "timeout_worker_healthcheck" not in one
    if sys.platform == "linux":
        assert several["loop"] == REUSE_PORT_LOOP  # the default with several workers


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads connections on Linux")
def test_the_reuse_port_loop_gives_each_worker_a_listening_socket_of_its_own() -> None:
    # given the socket uvicorn's supervisor binds (and never listens on) for its workers
    shared = socket.socket()
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    shared.bind(("127.0.0.1", 0))
    port = shared.getsockname()[1]
    loops = [reuse_port_loop(), reuse_port_loop()]
    servers = []
    try:
        # when two workers' loops serve on it
        for loop in loops:
            server = loop.run_until_complete(loop.create_server(asyncio.Protocol, sock=shared))
            servers.append((loop, server))
        # then each listens on a socket of its own, on the same port
        own = [server.sockets[0] for _, server in servers]
        assert len({s.fileno() for s in own}) == 2 and shared.fileno() not in {
            s.fileno() for s in own
        }
        assert {s.getsockname()[1] for s in own} == {port}
        # and a client connects
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        for loop, server in servers:
            server.close()
            loop.run_until_complete(server.wait_closed())
        for loop in loops:
            loop.close()
        shared.close()
