"""Store fixtures: every scenario runs on SQLite, and on PostgreSQL when CI provides one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from domain.ledger import StoreConfig

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
