"""Reaching behind the application's back, as a tamperer would: SQL straight on the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from domain.ledger.application import StoreConfig


def raw(store: StoreConfig, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run SQL straight on the store (SQLite file or PostgreSQL schema); return any rows."""
    if store.is_postgres:
        import psycopg

        assert store.database_url is not None
        with psycopg.connect(
            store.database_url, options=f"-c search_path={store.schema}", autocommit=True
        ) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []
    assert store.sqlite_path is not None
    conn = sqlite3.connect(store.sqlite_path)
    try:
        with conn:
            return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()
