"""The ledger-wide event-id index: written by the event store, in the transaction of the append.

An `event_id` names one event in the whole ledger. The streams alone cannot say so (each is
its own aggregate), so the application recorder keeps a table `event_id -> patient_id` beside
the stored events and inserts into it in the same transaction as the events (the pattern of the
library's `searchabletimestamps` example). Its primary key makes the database refuse the
second of two appends that reuse an id in different streams, however they race: that append
stores nothing, and the ledger answers it as a conflict. The read side never decides this.

A store made before the index existed gets it filled from its stored events when it is first
opened (`backfill`), under the lock that appends take, so no append slips past it.
The SQLite recorder is here, the PostgreSQL one in `domain.ledger.event_index_postgres`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

log = logging.getLogger(__name__)

# The kwarg `Ledger.save()` passes down to the recorder: `(event_id, patient_id)` per event.
EVENT_IDS = "event_ids"
BACKFILL_BATCH = 1000

EventIdOf = Callable[[StoredEvent], str | None]


def index_table(events_table_name: str) -> str:
    return events_table_name.removesuffix("s") + "_ids"  # stored_events -> stored_event_ids


def index_pairs(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    return list(kwargs.get(EVENT_IDS, ()))


class SQLiteEventIdRecorder(SQLiteApplicationRecorder):
    """SQLite: the stored events and their ids in one transaction."""

    def __init__(self, datastore: Any, events_table_name: str = "stored_events") -> None:
        self.event_ids_table = index_table(events_table_name)
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
            index_pairs(kwargs),
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
                pairs = backfill_pairs(rows, event_id_of)
                c.executemany(
                    f"INSERT INTO {self.event_ids_table} (event_id, patient_id) VALUES (?, ?) "
                    "ON CONFLICT (event_id) DO NOTHING",
                    pairs,
                )
                indexed += len(pairs)
            c.execute(f"SELECT COUNT(*) FROM {self.event_ids_table}")
            report_backfill(indexed, int(c.fetchone()[0]))
            return indexed


def backfill_pairs(rows: Sequence[Sequence[Any]], event_id_of: EventIdOf) -> list[tuple[str, str]]:
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


def report_backfill(indexed: int, distinct: int) -> None:
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
    """The topic `APPLICATION_RECORDER_TOPIC` names for the store's dialect (the PostgreSQL
    recorder lives in its own module, so SQLite users never import the driver)."""
    if is_postgres:
        return "domain.ledger.event_index_postgres:PostgresEventIdRecorder"
    return f"{__name__}:{SQLiteEventIdRecorder.__qualname__}"
