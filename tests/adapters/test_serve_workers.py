"""`oncoledger serve --workers N`: on PostgreSQL N worker processes, each with the store; on
SQLite allowed too, with one sentence saying that SQLite's single writer does not scale writes
(README "Deploying at scale"). The processes themselves are exercised in
tests/integration/test_scale_out.py."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Cli

from cli.serve import SQLITE_WORKERS_NOTE
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
