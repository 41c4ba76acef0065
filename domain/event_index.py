"""The ledger-wide event-id index: written by the event store, in the transaction of the append.

An `event_id` names one event in the whole ledger. The streams alone cannot say so (each is
its own aggregate), so the application recorder keeps a table `event_id -> patient_id` beside
the stored events and inserts into it in the same transaction as the events (the pattern of the
library's `searchabletimestamps` example). Its primary key makes the database refuse the
second of two appends that reuse an id in different streams, however they race: that append
stores nothing, and the ledger answers it as a conflict. The read side never decides this.

A store made before the index existed gets it filled from its stored events when it is first
opened (`backfill`), under the lock that appends take, so no append slips past it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL, Identifier

log = logging.getLogger(__name__)

# The kwarg `Ledger.save()` passes down to the recorder: `(event_id, patient_id)` per event.
EVENT_IDS = "event_ids"
BACKFILL_BATCH = 1000

EventIdOf = Callable[[StoredEvent], str | None]


def _index_table(events_table_name: str) -> str:
    return events_table_name.removesuffix("s") + "_ids"  # stored_events -> stored_event_ids


def _pairs(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    return list(kwargs.get(EVENT_IDS, ()))


class SQLiteEventIdRecorder(SQLiteApplicationRecorder):
    """SQLite: the stored events and their ids in one transaction."""

    def __init__(self, datastore: Any, events_table_name: str = "stored_events") -> None:
        self.event_ids_table = _index_table(events_table_name)
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.event_ids_table} ("
            "event_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        c.executemany(
            f"INSERT INTO {self.event_ids_table} (event_id, patient_id) VALUES (?, ?)",
            _pairs(kwargs),
        )
        return notification_ids

    def owners(self, event_ids: Iterable[str]) -> dict[str, str]:
        """The stream each of these event ids is stored in (ids not stored are left out)."""
        ids = list(event_ids)
        if not ids:
            return {}
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT event_id, patient_id FROM {self.event_ids_table} "
                f"WHERE event_id IN ({', '.join('?' for _ in ids)})",
                ids,
            )
            return {str(row[0]): str(row[1]) for row in c.fetchall()}

    def _needs_backfill(self, c: SQLiteCursor) -> bool:
        c.execute(
            f"SELECT EXISTS (SELECT 1 FROM {self.events_table_name}) "
            f"AND NOT EXISTS (SELECT 1 FROM {self.event_ids_table})"
        )
        return bool(c.fetchone()[0])

    def backfill(self, event_id_of: EventIdOf) -> int:
        """Index every stored event if the index is empty; returns how many were indexed."""
        with self.datastore.transaction(commit=False) as c:
            if not self._needs_backfill(c):
                return 0
        with self.datastore.transaction(commit=True) as c:
            # A write first: it takes the database's write lock, so appends wait for this.
            c.execute(f"DELETE FROM {self.event_ids_table} WHERE 0")
            if not self._needs_backfill(c):
                return 0
            last, indexed = 0, 0
            while True:
                c.execute(
                    f"SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (last, BACKFILL_BATCH),
                )
                rows = c.fetchall()
                if not rows:
                    break
                last = rows[-1][0]
                pairs = _backfill_pairs(rows, event_id_of)
                c.executemany(
                    f"INSERT INTO {self.event_ids_table} (event_id, patient_id) VALUES (?, ?) "
                    "ON CONFLICT (event_id) DO NOTHING",
                    pairs,
                )
                indexed += len(pairs)
            c.execute(f"SELECT COUNT(*) FROM {self.event_ids_table}")
            _report_backfill(indexed, int(c.fetchone()[0]))
            return indexed


class PostgresEventIdRecorder(PostgresApplicationRecorder):
    """PostgreSQL: the ids are inserted under the events table's lock, then the events."""

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.event_ids_table = _index_table(events_table_name)
        self.check_identifier_length(self.event_ids_table)
        table = Identifier(self.datastore.schema), Identifier(self.event_ids_table)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} "
                "(event_id text PRIMARY KEY, patient_id text NOT NULL)"
            ).format(*table)
        )
        self._insert_ids = SQL("INSERT INTO {}.{} (event_id, patient_id) VALUES (%s, %s)").format(
            *table
        )
        self._insert_ids_if_new = self._insert_ids + SQL(" ON CONFLICT (event_id) DO NOTHING")
        self._select_owners = SQL(
            "SELECT event_id, patient_id FROM {}.{} WHERE event_id = ANY(%s)"
        ).format(*table)
        self._needs_backfill = SQL(
            "SELECT EXISTS (SELECT 1 FROM {}.{}) AND NOT EXISTS (SELECT 1 FROM {}.{}) AS needs"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name), *table)
        self._count_ids = SQL("SELECT COUNT(*) AS n FROM {}.{}").format(*table)
        self._select_batch = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {}.{} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # The table lock first (the library takes it again before inserting the events): two
        # appends that reuse one id are then serialised, and the second fails on the key.
        self._lock_table(curs)
        pairs = _pairs(kwargs)
        if pairs:
            curs.executemany(self._insert_ids, pairs)
        super()._insert_events(curs, stored_events, **kwargs)

    def owners(self, event_ids: Iterable[str]) -> dict[str, str]:
        ids = list(event_ids)
        if not ids:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_owners, (ids,))
            return {str(row["event_id"]): str(row["patient_id"]) for row in curs.fetchall()}

    def backfill(self, event_id_of: EventIdOf) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._needs_backfill)
            if not curs.fetchone()["needs"]:  # type: ignore[index]
                return 0
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            curs.execute(self._needs_backfill)
            if not curs.fetchone()["needs"]:  # type: ignore[index]
                return 0
            last, indexed = 0, 0
            while True:
                curs.execute(self._select_batch, (last, BACKFILL_BATCH))
                rows = [
                    (
                        r["notification_id"],
                        r["originator_id"],
                        r["originator_version"],
                        r["topic"],
                        bytes(r["state"]),
                    )
                    for r in curs.fetchall()
                ]
                if not rows:
                    break
                last = rows[-1][0]
                pairs = _backfill_pairs(rows, event_id_of)
                if pairs:
                    curs.executemany(self._insert_ids_if_new, pairs)
                indexed += len(pairs)
            curs.execute(self._count_ids)
            row = curs.fetchone()
            _report_backfill(indexed, int(row["n"]) if row else 0)
            return indexed


def _backfill_pairs(rows: Sequence[Sequence[Any]], event_id_of: EventIdOf) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    unreadable = 0
    for _, originator_id, version, topic, state in rows:
        stored = StoredEvent(
            originator_id=str(originator_id),
            originator_version=int(version),
            topic=str(topic),
            state=bytes(state),
        )
        event_id = event_id_of(stored)
        if event_id is None:
            unreadable += 1
            continue
        pairs.append((event_id, str(originator_id)))
    if unreadable:
        log.warning("%d stored events could not be read to index their event_id", unreadable)
    return pairs


def _report_backfill(indexed: int, distinct: int) -> None:
    if indexed:
        log.info("indexed the event ids of %d stored events", indexed)
    if distinct < indexed:
        # Stored before the index existed: kept (nothing stored is ever refused afterwards),
        # and the id stays with its first stream; later appends reusing it are conflicts.
        log.warning(
            "%d stored events reuse an event_id of an earlier event in another stream",
            indexed - distinct,
        )


def recorder_topic(is_postgres: bool) -> str:
    """The topic `APPLICATION_RECORDER_TOPIC` names for the store's dialect."""
    cls = PostgresEventIdRecorder if is_postgres else SQLiteEventIdRecorder
    return f"{__name__}:{cls.__qualname__}"
