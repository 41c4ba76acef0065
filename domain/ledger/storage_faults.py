"""What a failed database call means for the caller: contention, a full disk, or a store that is
not there. The library wraps the driver's exceptions (sqlite3, psycopg) in its own; the driver's
error, kept as the cause, says which it was.

Contention (SQLite busy/locked, a PostgreSQL serialization failure or deadlock) is worth running
again; a full disk or a store that cannot be reached is not, and is told to the user as such.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator

from domain.errors import StorageFault, StorageFull

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
_SQLITE_IOERR = 10
# The shared-memory index could not grow: on Linux, a full disk (SQLITE_IOERR_SHMSIZE).
_SQLITE_IOERR_SHMSIZE = 4874
_SQLITE_FAULTS = {
    7: "out of memory",
    8: "the database file is read-only",
    10: "a disk I/O error",
    11: "the database file is damaged",
    14: "the database file cannot be opened",
    26: "the file is not a database",
}
# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_DISK_FULL = "53100"
_PG_CONTENTION = {"40001", "40P01", "55P03"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_contention(exc: BaseException) -> bool:
    """Another writer held the lock or took the versions: running the command again may work."""
    for cause in _chain(exc):
        if _is_pipeline_aborted(cause):
            # psycopg's "pipeline aborted": an earlier statement of the same transaction failed
            # (the unique key another process's write took, say), and the driver reports that
            # statement's failure on a later one. Not a lost connection: the command runs again
            # from the stream as stored, which answers the refusal truthfully.
            return True
        if isinstance(cause, sqlite3.Error):
            code = getattr(cause, "sqlite_errorcode", None)
            if code is not None:
                return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
            return "locked" in str(cause) or "busy" in str(cause)
        if _sqlstate(cause) in _PG_CONTENTION:
            return True
    return False


def storage_fault(
    exc: BaseException, *, doing: str, outcome: str = "", path: str | None = None
) -> StorageFault | None:
    """The fault `exc` is, as the error to tell the user (`doing`: what was attempted, e.g.
    "recording the event"; `outcome`: what that left, e.g. "nothing was stored"); None when
    `exc` is not a storage fault or is mere contention. `path`, a SQLite file, lets a disk I/O
    error on a disk with no space left be told as the full disk it is."""
    if is_contention(exc):
        return None
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return _full(doing, outcome)
        if isinstance(cause, sqlite3.Error):
            return _sqlite_fault(cause, doing, outcome, path)
        if _sqlstate(cause) == _PG_DISK_FULL:
            return _full(doing, outcome)
        if _is_postgres_connection_error(cause):
            first = str(cause).strip().splitlines()
            reason = first[0] if first else type(cause).__name__
            return _unavailable(doing, outcome, f"PostgreSQL: {reason}")
    return None


def _sqlite_fault(
    cause: sqlite3.Error, doing: str, outcome: str, path: str | None
) -> StorageFault | None:
    code = getattr(cause, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    text = str(cause)
    if primary == _SQLITE_FULL or code == _SQLITE_IOERR_SHMSIZE or "disk is full" in text:
        return _full(doing, outcome)
    if primary == _SQLITE_IOERR and path is not None and _no_space_left(path):
        return _full(doing, outcome)
    if primary in _SQLITE_FAULTS:
        return _unavailable(doing, outcome, f"SQLite: {_SQLITE_FAULTS[primary]}")
    if primary is None and ("disk I/O error" in text or "unable to open" in text):
        return _unavailable(doing, outcome, f"SQLite: {text}")
    return None  # a constraint, a programming error: not the store's fault


def _is_pipeline_aborted(cause: BaseException) -> bool:
    cls = type(cause)
    return cls.__name__ == "PipelineAborted" and cls.__module__.startswith("psycopg")


def _is_postgres_connection_error(cause: BaseException) -> bool:
    """psycopg's OperationalError / InterfaceError (a lost or refused connection, the server
    shutting down) or the pool's timeout; not a constraint or a bad statement."""
    names = {"OperationalError", "InterfaceError", "PoolTimeout"}
    return any(
        cls.__module__.startswith("psycopg") and cls.__name__ in names
        for cls in type(cause).__mro__
    )


def _no_space_left(path: str) -> bool:
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 64 * 1024


def _full(doing: str, outcome: str) -> StorageFull:
    return StorageFull(
        f"the store's disk is full: {doing} failed{_then(outcome)}; free space on it and try again",
        rule="storage_full",
    )


def _unavailable(doing: str, outcome: str, reason: str) -> StorageFault:
    return StorageFault(
        f"the store is unavailable ({reason}): {doing} failed{_then(outcome)}; try again later",
        rule="store_unavailable",
    )


def _then(outcome: str) -> str:
    return f", {outcome}" if outcome else ""
