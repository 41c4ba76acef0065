"""The ledger-wide event-id index on PostgreSQL (see `domain.ledger.event_index`), and the
append's commit as one statement.

The library commits an append in a transaction of two round trips: the table lock, the ids and
the events in a pipeline, then, once the client has read the notification ids back, COMMIT.
The events table's lock (which keeps notification ids in commit order) is held across the gap
between them, and in a busy Python process that gap is the committer thread's wait for the GIL
(up to its 5 ms switch interval): under `serve --workers 2` the other worker's commit waited on
it (seen in `pg_stat_activity`: "idle in transaction" after the INSERT, holding the lock, while
the other backend waited on it). Here an append is one call of a function of the store's own
(`insert_events_function`), on a connection in autocommit: the lock, the ids, the events and
the commit all happen in the server, in one round trip, and the lock is let go at the commit.
The library's NOTIFY is left out: nothing here LISTENs (the projectors poll the position and are
woken by the saves of their own process).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from domain.ledger.event_index import (
    BACKFILL_BATCH,
    EVENT_IDS,
    EventIdOf,
    backfill_pairs,
    index_pairs,
    index_table,
    report_backfill,
)

# The advisory lock the event tables and the append function are created under.
SCHEMA_LOCK = 7316014


class PostgresEventIdRecorder(PostgresApplicationRecorder):
    """PostgreSQL: the ids are inserted under the events table's lock, then the events."""

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        # No server-side prepared statements on the ledger's connections. The library inserts in
        # pipeline mode with `prepare=True`; when a pipelined transaction fails (the unique key
        # another process's write took), the statements it was preparing are skipped by the
        # server while psycopg records them as prepared, and the connection's next insert then
        # fails with "prepared statement ... does not exist" (seen: a 500 under two API
        # processes on one database). Set before the pool opens its first connection.
        datastore.pool.kwargs["prepare_threshold"] = None
        super().__init__(datastore, events_table_name=events_table_name)
        self.event_ids_table = index_table(events_table_name)
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
        self.insert_function = self.events_table_name + "_append"
        self.check_identifier_length(self.insert_function)
        function = Identifier(self.datastore.schema), Identifier(self.insert_function)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {}.{}"
                "(events {}.{}[], event_ids text[], patient_ids text[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
                "SET LOCAL lock_timeout = '{}s'; "
                "LOCK TABLE {}.{} IN EXCLUSIVE MODE; "
                "INSERT INTO {}.{} (event_id, patient_id) "
                "SELECT * FROM unnest(event_ids, patient_ids); "
                "RETURN QUERY INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
                "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(
                *function,
                Identifier(self.datastore.schema),
                Identifier(self.stored_event_type_name),
                self.datastore.lock_timeout,
                Identifier(self.datastore.schema),
                Identifier(self.events_table_name),
                *table,
                Identifier(self.datastore.schema),
                Identifier(self.events_table_name),
            )
        )
        self._call_insert = SQL("SELECT * FROM {}.{}(%s, %s, %s)").format(*function)
        self._count_ids = SQL("SELECT COUNT(*) AS n FROM {}.{}").format(*table)
        self._select_batch = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {}.{} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))

    def _create_table(self, curs: Any) -> None:
        # Serialised across processes: two starting at once (`serve --workers N`) would
        # otherwise race on `CREATE OR REPLACE FUNCTION` ("tuple concurrently updated").
        curs.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        super()._create_table(curs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The events and their ids stored and committed in one call (see the module)."""
        if not stored_events or set(kwargs) - {EVENT_IDS}:  # (a tracking record: the library's)
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        pairs = index_pairs(kwargs)
        events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._call_insert,
                (events, [event_id for event_id, _ in pairs], [p for _, p in pairs]),
            )
            return [int(row[self.insert_function]) for row in curs.fetchall()]

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # The table lock first (the library takes it again before inserting the events): two
        # appends that reuse one id are then serialised, and the second fails on the key.
        self._lock_table(curs)
        pairs = index_pairs(kwargs)
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
                pairs = backfill_pairs(rows, event_id_of)
                if pairs:
                    curs.executemany(self._insert_ids_if_new, pairs)
                indexed += len(pairs)
            curs.execute(self._count_ids)
            row = curs.fetchone()
            report_backfill(indexed, int(row["n"]) if row else 0)
            return indexed
