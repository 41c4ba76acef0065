"""Stored read models, kept current by tracked catch-up over the ledger's notification log.

Each batch of notifications is applied in one transaction together with the new tracking
position: an event is applied exactly once, and a crash leaves the views at a consistent
position to resume from. Applying an event costs the same whatever the patient's history: the
catch-up keeps each recently projected patient's state in memory (`PatientState`, least
recently used first) and folds the event into it; a patient not kept (or kept at another
version: another projector applied events of it) is read once from the ledger's stream.
The content depends only on the position reached (`projections.views_schema`: what is stored).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from domain.errors import NotFound
from domain.ledger.application import Ledger, StoreConfig
from domain.ledger.db import Cursor, PostgresDb, SqliteDb, open_db
from domain.ledger.patient_keys import scrub, secure
from projections import readmodels, survival_subjects
from projections.cohort_index import (
    PATIENT_COLUMNS,
    _patient_row,
    _synthetic_clause,
    _where,
    query_patients,
)
from projections.current import CurrentReads
from projections.projection import Projection, fewer_collections, notifications, write_rows
from projections.views_schema import (
    DROP,
    INDEXES,
    LAYOUT_NAME,
    LAYOUT_VERSION,
    LEGACY,
    REBUILD_NAME,
    TABLES,
    TRACKING_NAME,
)

__all__ = [
    "DROP",
    "PATIENT_COLUMNS",
    "TRACKING_NAME",
    "Views",
    "_synthetic_clause",
    "_where",
]

log = logging.getLogger(__name__)

BATCH = 500
REBUILD_BATCH = 5000
# A rebuild's worker processes by default: one per core beyond this process's own, at most
# MAX_WORKERS (the parent writes every batch: more would wait on it), from WORKERS_FROM events
# (starting one costs ~0.4 s of CPU), with at least MIN_CORES usable cores. Each process reads
# and decodes only its own patients' events; what a worker adds is its start and the pickling
# of its rows: it pays while a core is idle, and loses when other work holds the cores.
MAX_WORKERS = 3
WORKERS_FROM = 50_000
MIN_CORES = 2


def auto_workers(remaining: int) -> int:
    """The worker processes a rebuild of `remaining` events starts by default."""
    if remaining < WORKERS_FROM:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    if cores < MIN_CORES:
        return 0
    return max(0, min(cores - 1, MAX_WORKERS))


class Views:
    def __init__(self, db: SqliteDb | PostgresDb, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger
        self._catching_up = threading.Lock()
        # Projected patients' states, each after exactly the events the views have applied of
        # it; any failed batch clears them all.
        self.projection = Projection(ledger)
        self.current = CurrentReads(ledger)
        self._rebuilding: bool | None = None  # unknown until looked up
        self.create()

    @classmethod
    def open(cls, config: StoreConfig, ledger: Ledger) -> Views:
        return cls(open_db(config), ledger)

    def close(self) -> None:
        self.db.close()

    def create(self, *, indexes: bool = True) -> None:
        with self.db.transaction(write=True) as cur:
            if self.db.is_postgres:
                # Two processes creating the tables at once would race in the catalogue.
                cur.execute("SELECT pg_advisory_xact_lock(7316001)")
            if _layout(cur) not in (None, LAYOUT_VERSION):
                # Views of another layout (an older version of this program): derived data,
                # dropped and built again from the events.
                log.warning("the views have an older layout; they are rebuilt")
                _drop(cur)
            for statement in TABLES:
                cur.execute(statement)
            for name, value in ((TRACKING_NAME, 0), (LAYOUT_NAME, LAYOUT_VERSION)):
                cur.execute(
                    "INSERT INTO ol_tracking (name, position) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, value),
                )
            if not indexes:
                cur.execute(
                    "INSERT INTO ol_tracking (name, position) VALUES (?, 0) "
                    "ON CONFLICT (name) DO NOTHING",
                    (REBUILD_NAME,),
                )
            elif not _rebuilding(cur):
                for statement in INDEXES:
                    cur.execute(statement)
        self._rebuilding = None
        with self.db.transaction() as cur:
            stale = survival_subjects.missing_rows(cur)
        if stale or self.position() > self.head():
            # The views are ahead of the store: they were built from another ledger (a replaced
            # or restored file); or a read model was added since they were built. Derived data
            # is never trusted over the events: build it again.
            log.warning("views are ahead of the event store or incomplete; rebuilding them")
            self.drop()
            self.create()

    def drop(self) -> None:
        self.projection.clear()
        with self.db.transaction(write=True) as cur:
            _drop(cur)
        self._rebuilding = None

    # -- catch-up ------------------------------------------------------------------------------

    def position(self) -> int:
        with self.db.transaction() as cur:
            cur.execute("SELECT position FROM ol_tracking WHERE name = ?", (TRACKING_NAME,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def head(self) -> int:
        return int(self.ledger.recorder.max_notification_id() or 0)

    def catch_up(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        batch: int = BATCH,
        skip_locked: bool = False,
    ) -> int:
        """Apply every notification after the tracked position; return how many were applied.

        With `skip_locked` (the projector's way), a PostgreSQL tracking row another process
        holds is not waited for: that process is applying the same events, and this call
        returns at once (0) instead of stalling behind it."""
        head = self.head()
        if self.position() >= head:
            self._finish_rebuild()
            return 0
        # Threads of this process catch up one at a time: a thread that waited here usually
        # finds its events applied by the one before it, without touching the database lock.
        if self._catching_up.acquire(blocking=False):
            # Not waited for: the position just read is as good as reading it again (the batch
            # reads it once more under the write lock before applying anything).
            try:
                applied = self._catch_up(head, progress, batch, skip_locked, checked=True)
            finally:
                self._catching_up.release()
        else:
            with self._catching_up:
                applied = self._catch_up(head, progress, batch, skip_locked)
        if applied:
            self._rebuilding = None  # a rebuild another process left unfinished, say
        self._finish_rebuild()
        return applied

    def _catch_up(
        self,
        head: int,
        progress: Callable[[int, int], None] | None,
        batch: int,
        skip_locked: bool = False,
        *,
        checked: bool = False,
    ) -> int:
        applied = 0
        if not checked and self.position() >= head:
            return 0
        lock = ""
        if self.db.is_postgres:
            lock = " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
        while True:
            with self.db.transaction(write=True) as cur:
                # The tracking row is locked (PostgreSQL) or the file is (SQLite) until the
                # batch and its new position commit together: each event applied once.
                cur.execute(
                    "SELECT position FROM ol_tracking WHERE name = ?" + lock, (TRACKING_NAME,)
                )
                locked = cur.fetchone()
                if locked is None:
                    return applied  # another projector holds the row and is applying these
                position = int(locked[0])
                notifications = self._notifications(position + 1, batch)
                if not notifications:
                    return applied
                try:
                    self._apply(cur, notifications)
                except BaseException:
                    self.projection.clear()  # the batch is rolled back: so are its states
                    raise
                position = notifications[-1][0]
                cur.execute(
                    "UPDATE ol_tracking SET position = ? WHERE name = ?",
                    (position, TRACKING_NAME),
                )
            applied += len(notifications)
            if progress:
                progress(applied, position)
            if position >= head:
                # Up to the head seen on entry: every write that returned before this call
                # started is applied. Later ones are caught up by their own writers.
                return applied

    def _notifications(self, start: int, limit: int) -> Sequence[Any]:
        return notifications(self.ledger, start, limit)

    def _apply(self, cur: Cursor, notifications: Sequence[Any]) -> None:
        events, patients, survival = self.projection.rows(notifications)
        write_rows(cur, events, patients, survival)

    # -- rebuild -------------------------------------------------------------------------------

    def rebuild(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        batch: int = REBUILD_BATCH,
        workers: int | None = None,
    ) -> int:
        """Build every view again from the first event; a rebuild that was interrupted (even
        by kill -9) is resumed from its last committed batch, not started again.

        The tables are loaded without their secondary indexes, in large batches; the indexes
        and the planner's statistics are built once the head is reached. With `workers`, the
        rows are computed by this process and that many worker processes
        (`projections.rebuild_workers`); by default (None), one fewer than the cores this
        process may use (at most `MAX_WORKERS`) when at least `WORKERS_FROM` events remain
        (below that, starting them costs more than they save), else none."""
        with self.db.transaction() as cur:
            resuming = _rebuilding(cur)
        if not resuming:
            self.drop()
            self.create(indexes=False)
        self._rebuilding = True
        if workers is None:
            workers = auto_workers(self.head() - self.position())
        applied = 0
        with fewer_collections():
            if workers > 0:
                applied = self._catch_up_in_workers(workers, batch, progress)
            applied += self.catch_up(
                progress=(lambda done, at: progress(applied + done, at)) if progress else None,
                batch=batch,
            )
        return applied

    def _catch_up_in_workers(
        self, count: int, batch: int, progress: Callable[[int, int], None] | None
    ) -> int:
        """Apply up to the head with the rows computed by this process and `count` worker
        processes. Stops (the caller's catch-up goes on) when another projector moves the
        position meanwhile."""
        from projections.rebuild_workers import Workers, partitions

        head = self.head()
        position = self.position()
        applied = 0
        ranges: deque[tuple[int, int]] = deque()  # sent to the workers, not yet received
        start = position + 1
        lock = " FOR UPDATE" if self.db.is_postgres else ""
        with self._catching_up:
            parts = partitions(self.ledger, start, head, count)
            workers = Workers(self.ledger.config, parts)
            try:

                def send() -> None:
                    nonlocal start
                    if start <= head:
                        stop = min(head, start + batch - 1)
                        workers.send(start, stop)
                        ranges.append((start, stop))
                        start = stop + 1

                send()
                send()  # the next range is computed while this one is written
                while ranges:
                    first, stop = ranges.popleft()
                    notes = notifications(self.ledger, first, stop - first + 1, stop, parts[0])
                    own = self.projection.rows(notes)
                    (events, patients, survival), size, last = workers.receive(
                        own, len(notes), notes[-1][0] if notes else None
                    )
                    send()
                    if last is None:
                        continue  # no notification in that range (ids skipped)
                    with self.db.transaction(write=True) as cur:
                        cur.execute(
                            "SELECT position FROM ol_tracking WHERE name = ?" + lock,
                            (TRACKING_NAME,),
                        )
                        found = cur.fetchone()
                        if found is None or int(found[0]) != position:
                            break  # another projector applied events meanwhile
                        write_rows(cur, events, patients, survival)
                        cur.execute(
                            "UPDATE ol_tracking SET position = ? WHERE name = ?",
                            (last, TRACKING_NAME),
                        )
                    position = last
                    applied += size
                    if progress:
                        progress(applied, last)
            except BaseException:
                self.projection.clear()
                raise
            finally:
                workers.close()
        # States of rows computed and not written (another projector moved on) are dropped.
        self.projection.clear()
        return applied

    def _finish_rebuild(self) -> None:
        """At the head after a rebuild's bulk load: build the indexes, refresh statistics."""
        if self._rebuilding is False:
            return
        with self.db.transaction() as cur:
            marked = _rebuilding(cur)
        if not marked:
            self._rebuilding = False
            return
        with self.db.transaction(write=True) as cur:
            if self.db.is_postgres:
                cur.execute("SELECT pg_advisory_xact_lock(7316001)")
            if not _rebuilding(cur):  # another process finished it meanwhile
                self._rebuilding = False
                return
            for statement in INDEXES:
                cur.execute(statement)
            cur.execute("DELETE FROM ol_tracking WHERE name = ?", (REBUILD_NAME,))
        self._rebuilding = False
        self.analyze()

    def analyze(self) -> None:
        """Refresh the planner's statistics, so cohort filters pick the right index."""
        with self.db.transaction(write=True) as cur:
            cur.execute("ANALYZE ol_patients")

    # -- erasure -------------------------------------------------------------------------------

    PATIENT_TABLES = ("ol_patients", survival_subjects.TABLE)

    def forget(self, patient_id: str) -> None:
        """Delete every stored row of one patient (idempotent), and leave no copy of them on
        disk (secure_delete zeroes the rows; the WAL is checkpointed; PostgreSQL vacuums the
        tables). The change audit keeps the events' clear envelopes (who recorded which type
        when), without their correction reason."""
        self.projection.forget(patient_id)  # the projector's state of it too
        self.current.forget(patient_id)
        secure(self.db)
        with self.db.transaction(write=True) as cur:
            for table in self.PATIENT_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE patient_id = ?", (patient_id,))
            cur.execute("UPDATE ol_events SET reason = NULL WHERE patient_id = ?", (patient_id,))
        # Earlier versions of its rows sit in free pages: VACUUM drops them (SQLite).
        scrub(self.db, ["ol_events", *self.PATIENT_TABLES], vacuum=True)

    # -- reads ---------------------------------------------------------------------------------

    def doc(self, patient_id: str, view: str) -> bytes | None:
        """A patient's current read model as JSON (None: not registered, or erased)."""
        if self.ledger.is_erased(patient_id):
            return None
        try:
            return self.current.json(patient_id, view, rule=readmodels.STORED_CTC_RULE)
        except NotFound:
            return None

    def patient(self, patient_id: str) -> readmodels.PatientRow:
        with self.db.transaction() as cur:
            cur.execute(
                f"SELECT {', '.join(PATIENT_COLUMNS)} FROM ol_patients WHERE patient_id = ?",
                (patient_id,),
            )
            row = cur.fetchone()
        if row is None:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        return _patient_row(row)

    def patients(self, **query: Any) -> readmodels.PatientPage:
        """The cohort index (`projections.cohort_index.query_patients`)."""
        return query_patients(self.db, self.head, **query)

    def status(self) -> dict[str, int]:
        position, head = self.position(), self.head()
        lag = max(0, head - position)
        return {"position": position, "head": head, "lag": lag, "behind": lag}

    def patient_at(self, patient_id: str, version: int) -> readmodels.PatientRow | None:
        """The cohort row, only if the views have applied exactly `version` of its events."""
        with self.db.transaction() as cur:
            cur.execute("SELECT MAX(version) FROM ol_events WHERE patient_id = ?", (patient_id,))
            found = cur.fetchone()
            if found is None or found[0] is None or int(found[0]) != version:
                return None
            cur.execute(
                f"SELECT {', '.join(PATIENT_COLUMNS)} FROM ol_patients WHERE patient_id = ?",
                (patient_id,),
            )
            row = cur.fetchone()
        return None if row is None else _patient_row(row)


def _layout(cur: Cursor) -> int | None:
    """The layout version of the views in this database (None: no views yet; 1: before the
    layout was recorded)."""
    cur.execute(TABLES[0])  # ol_tracking
    cur.execute(
        "SELECT name, position FROM ol_tracking WHERE name IN (?, ?)",
        (TRACKING_NAME, LAYOUT_NAME),
    )
    found = dict(cur.fetchall())
    if LAYOUT_NAME in found:
        return int(found[LAYOUT_NAME])
    return 1 if TRACKING_NAME in found else None


def _rebuilding(cur: Cursor) -> bool:
    cur.execute("SELECT 1 FROM ol_tracking WHERE name = ?", (REBUILD_NAME,))
    return cur.fetchone() is not None


def _drop(cur: Cursor) -> None:
    for table in (*DROP, *LEGACY):
        cur.execute(f"DROP TABLE IF EXISTS {table}")
