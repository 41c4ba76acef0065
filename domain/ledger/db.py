"""A thin SQL layer for the read side and the stores beside the ledger: the same statements on
SQLite and PostgreSQL.

Statements are written with `?` placeholders; on PostgreSQL they become `%s`. A write
transaction takes the database's write lock first (SQLite `BEGIN IMMEDIATE`), so two processes
catching up never apply the same event twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

if TYPE_CHECKING:
    from domain.ledger.application import StoreConfig


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqliteDb:
    """One connection per thread on the views file beside the event store, in WAL mode."""

    is_postgres = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cur.close()

    def secure(self) -> None:
        """From now on this thread's connection zeroes deleted and overwritten content on disk
        (erasure: no copy of a destroyed key or a forgotten document stays in a free page)."""
        self._connection().execute("PRAGMA secure_delete=ON")

    def vacuum(self) -> None:
        """Rewrite the file without its free pages (old versions of rewritten rows)."""
        self._connection().execute("VACUUM")

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and empty it (no old page versions remain)."""
        self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA optimize")  # SQLite's advice: refresh stale statistics
                conn.close()
            self._connections.clear()
        self._local = threading.local()


class _PgCursor:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())


class PostgresDb:
    is_postgres = True

    def __init__(self, url: str, schema: str | None) -> None:
        from psycopg_pool import ConnectionPool

        options = f"-c search_path={schema}" if schema else None
        kwargs: dict[str, Any] = {"autocommit": False}
        if options:
            kwargs["options"] = options
        self.pool = ConnectionPool(url, min_size=1, max_size=20, kwargs=kwargs, open=True)
        self._url, self._kwargs = url, kwargs

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[_PgCursor]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield _PgCursor(cur)

    def close(self) -> None:
        self.pool.close()

    def advisory_lock(self, key: int) -> AdvisoryLock:
        """The session-level advisory lock `key`, tried for on a connection of its own (opened
        at the first try, kept while trying again)."""
        return AdvisoryLock(self._url, self._kwargs, key)


class AdvisoryLock:
    """A session-level PostgreSQL advisory lock and the connection of its own that holds it: a
    process killed with -9 ends the session, and so lets go of the lock at once."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], key: int) -> None:
        self._conninfo = conninfo
        self._kwargs = {**kwargs, "autocommit": True}
        self._key = int(key)
        self._conn: Any = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock unless another session holds it; whether this one holds it now."""
        if self.held:
            return True
        if self._conn is None or self._conn.closed:
            import psycopg

            self._conn = psycopg.connect(self._conninfo, **self._kwargs)
        try:
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except BaseException:
            self.close()
            raise
        self.held = bool(row and row[0])
        return self.held

    def alive(self) -> bool:
        """Whether the lock's connection (and so the lock) is still there: one round trip."""
        try:
            self._conn.execute("SELECT 1")
        except Exception:
            self.close()
            return False
        return True

    def close(self) -> None:
        """Let go of the lock, by ending its session."""
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def views_path(config: StoreConfig) -> str:
    path = Path(config.sqlite_path or "oncoledger.db")
    return str(path.with_name(path.name + ".views"))


def open_db(config: StoreConfig, *, side: str = "views") -> SqliteDb | PostgresDb:
    """`views`: the rebuildable read models (a file beside the SQLite store). `ledger`: tables
    that must never be rebuilt (tokens, access log), in the ledger's own SQLite file."""
    if config.database_url:
        return PostgresDb(config.database_url, config.schema)
    if side == "ledger":
        return SqliteDb(config.sqlite_path or "oncoledger.db")
    return SqliteDb(views_path(config))


def create_tables(db: SqliteDb | PostgresDb, schema: Sequence[str], lock_key: int) -> None:
    """Run `schema` (`CREATE ... IF NOT EXISTS` statements) in one write transaction. On
    PostgreSQL under the advisory lock `lock_key`: two processes creating the same table at once
    would race in the catalogue."""
    with db.transaction(write=True) as cur:
        if db.is_postgres:
            cur.execute(f"SELECT pg_advisory_xact_lock({int(lock_key)})")
        for statement in schema:
            cur.execute(statement)


class LedgerStore:
    """The skeleton of a store kept beside the ledger (`open_db(side="ledger")`, never rebuilt):
    a connection, its tables created when it is opened, closed with it."""

    SCHEMA: ClassVar[tuple[str, ...]]
    LOCK_KEY: ClassVar[int]  # the advisory lock its tables are created under (PostgreSQL)

    def __init__(self, db: SqliteDb | PostgresDb) -> None:
        self.db = db
        create_tables(db, self.SCHEMA, self.LOCK_KEY)

    @classmethod
    def open(cls, config: StoreConfig, *args: Any) -> Self:
        """The store on the ledger's side of `config`; `args` go to the constructor after it."""
        return cls(open_db(config, side="ledger"), *args)

    def close(self) -> None:
        self.db.close()
