"""Stored read models, kept current by tracked catch-up over the ledger's notification log.

Each batch of notifications is applied in one transaction together with the new tracking
position: an event is applied exactly once, and a crash leaves the views at a consistent
position to resume from. Per-patient views are recomputed from the patient's events as the
views know them (the `ol_events` table), so the content depends only on the position reached.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from domain import events as ev
from domain.errors import NotFound, ValidationFailed
from domain.instants import iso_utc
from domain.ledger.application import Ledger, StoreConfig
from domain.ledger.db import Cursor, PostgresDb, SqliteDb, open_db
from domain.ledger.patient_keys import envelope_of, scrub, secure
from domain.synthetic import SYNTHETIC_ID_PREFIXES
from projections import readmodels, survival_subjects

log = logging.getLogger(__name__)

TRACKING_NAME = "views"
BATCH = 500
REBUILD_BATCH = 2000
HISTORY_CACHE = 2000  # patients whose decoded history the catch-up keeps in memory

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ol_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS ol_events (
        event_id TEXT NOT NULL,
        position BIGINT PRIMARY KEY,
        patient_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        type TEXT NOT NULL,
        occurred TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        source TEXT NOT NULL,
        target_event_id TEXT,
        reason TEXT,
        body TEXT NOT NULL,
        UNIQUE (patient_id, version))""",
    "CREATE INDEX IF NOT EXISTS ol_events_actor ON ol_events (recorded_by, position)",
    "CREATE INDEX IF NOT EXISTS ol_events_type ON ol_events (type, position)",
    "CREATE INDEX IF NOT EXISTS ol_events_recorded ON ol_events (recorded_at)",
    """CREATE TABLE IF NOT EXISTS ol_docs (
        patient_id TEXT NOT NULL, view TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (patient_id, view))""",
    """CREATE TABLE IF NOT EXISTS ol_patients (
        patient_id TEXT PRIMARY KEY,
        sex TEXT, birth_year BIGINT, primary_site TEXT, histology TEXT,
        stage_group TEXT, ctc_latest_per_7_5_ml DOUBLE PRECISION, ctc_trend TEXT NOT NULL,
        concordance TEXT NOT NULL, survival_status TEXT, os_months DOUBLE PRECISION,
        events BIGINT NOT NULL, last_recorded_at TEXT)""",
    *(
        f"CREATE INDEX IF NOT EXISTS ol_patients_{col} ON ol_patients ({col}, patient_id)"
        for col in (
            "sex",
            "birth_year",
            "histology",
            "stage_group",
            "ctc_latest_per_7_5_ml",
            "ctc_trend",
            "concordance",
            "survival_status",
            "os_months",
            "events",
            "last_recorded_at",
        )
    ),
    *survival_subjects.SCHEMA,
)
DROP = ("ol_patients", "ol_docs", "ol_events", "ol_tracking", survival_subjects.TABLE)

PATIENT_COLUMNS = tuple(readmodels.PatientRow.__struct_fields__)
_EQUALITY_FILTERS = (
    "sex",
    "histology",
    "stage_group",
    "ctc_trend",
    "concordance",
    "survival_status",
    "primary_site",
)
_RANGE_FILTERS = (
    "birth_year",
    "ctc_latest_per_7_5_ml",
    "os_months",
    "events",
    "last_recorded_at",
)
_entry_decoder = msgspec.json.Decoder(ev.AnyEvent)
_json = msgspec.json.Encoder()


class Views:
    def __init__(self, db: SqliteDb | PostgresDb, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger
        self._catching_up = threading.Lock()
        # Decoded histories of recently projected patients (least recently used first), so that
        # applying an event does not re-read and re-decode the patient's whole stream. An entry
        # is used only when it ends exactly where the new events begin; any failure clears all.
        self._histories: OrderedDict[str, list[ev.AnyEvent]] = OrderedDict()
        self.create()

    @classmethod
    def open(cls, config: StoreConfig, ledger: Ledger) -> Views:
        return cls(open_db(config), ledger)

    def close(self) -> None:
        self.db.close()

    def create(self) -> None:
        with self.db.transaction(write=True) as cur:
            if self.db.is_postgres:
                # Two processes creating the tables at once would race in the catalogue.
                cur.execute("SELECT pg_advisory_xact_lock(7316001)")
            for statement in SCHEMA:
                cur.execute(statement)
            cur.execute(
                "INSERT INTO ol_tracking (name, position) VALUES (?, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (TRACKING_NAME,),
            )
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
        self._histories.clear()
        with self.db.transaction(write=True) as cur:
            for table in DROP:
                cur.execute(f"DROP TABLE IF EXISTS {table}")

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
            return 0
        # Threads of this process catch up one at a time: a thread that waited here usually
        # finds its events applied by the one before it, without touching the database lock.
        with self._catching_up:
            return self._catch_up(head, progress, batch, skip_locked)

    def _catch_up(
        self,
        head: int,
        progress: Callable[[int, int], None] | None,
        batch: int,
        skip_locked: bool = False,
    ) -> int:
        applied = 0
        if self.position() >= head:
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
                notifications = self.ledger.recorder.select_notifications(position + 1, batch)
                if not notifications:
                    return applied
                try:
                    self._apply(cur, notifications)
                except BaseException:
                    self._histories.clear()  # the batch is rolled back: so are its histories
                    raise
                position = notifications[-1].id
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

    def _apply(self, cur: Cursor, notifications: Sequence[Any]) -> None:
        touched: dict[str, list[ev.AnyEvent] | None] = {}
        rows = []
        for n in notifications:
            patient_id = str(n.originator_id)
            if self.ledger.is_erased(patient_id):
                rows.append(_erased_row(n))  # the clear envelope only (see `forget`)
                continue
            try:
                state = self.ledger.plaintext(n)
                entry = _entry_decoder.decode(state)
            except Exception:
                # A stream whose payloads cannot be read must not stall every other patient's
                # views: skipped, and said so in the log.
                log.warning(
                    "event %s of patient %s cannot be read; skipped",
                    n.id,
                    patient_id,
                    exc_info=True,
                )
                continue
            target = getattr(entry, "target_event_id", None)
            rows.append(
                _column_safe(
                    (
                        str(entry.event_id),
                        n.id,
                        str(n.originator_id),
                        n.originator_version,
                        entry.type,
                        entry.occurred,
                        _iso(entry.recorded_at),
                        entry.recorded_by or "",
                        entry.source or "",
                        str(target) if target else None,
                        getattr(entry, "reason", None) if target else None,
                        state.decode() if isinstance(state, bytes) else str(state),
                    )
                )
            )
            if patient_id not in touched:
                cached = self._histories.pop(patient_id, None)
                if cached is not None and len(cached) != n.originator_version - 1:
                    cached = None  # another projector applied events in between: read again
                touched[patient_id] = cached
            known = touched[patient_id]
            if known is not None:
                if len(known) == n.originator_version - 1:
                    known.append(entry)
                else:
                    touched[patient_id] = None
        cur.executemany(
            "INSERT INTO ol_events (event_id, position, patient_id, version, type, occurred, "
            "recorded_at, recorded_by, source, target_event_id, reason, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        for patient_id, known in touched.items():
            history = known if known is not None else self._stored_history(cur, patient_id)
            self._refresh_patient(cur, patient_id, history)
            self._histories[patient_id] = history
            while len(self._histories) > HISTORY_CACHE:
                self._histories.popitem(last=False)

    @staticmethod
    def _stored_history(cur: Cursor, patient_id: str) -> list[ev.AnyEvent]:
        cur.execute(
            "SELECT body FROM ol_events WHERE patient_id = ? ORDER BY version", (patient_id,)
        )
        return [_entry_decoder.decode(row[0]) for row in cur.fetchall()]

    def _refresh_patient(self, cur: Cursor, patient_id: str, history: list[ev.AnyEvent]) -> None:
        try:
            views, row = readmodels.project(patient_id, history)
        except Exception:
            # One stream the read models cannot digest must not stall the views of all others:
            # its previous views stay, the failure is logged, and the catch-up moves on.
            log.exception("read models of patient %s could not be computed", patient_id)
            return
        cur.executemany(
            "INSERT INTO ol_docs (patient_id, view, doc) VALUES (?, ?, ?) "
            "ON CONFLICT (patient_id, view) DO UPDATE SET doc = excluded.doc",
            [(patient_id, name, _json.encode(doc).decode()) for name, doc in views.items()],
        )
        values = _column_safe([getattr(row, col) for col in PATIENT_COLUMNS])
        values[PATIENT_COLUMNS.index("last_recorded_at")] = _iso(row.last_recorded_at)
        updates = ", ".join(f"{c} = excluded.{c}" for c in PATIENT_COLUMNS[1:])
        cur.execute(
            f"INSERT INTO ol_patients ({', '.join(PATIENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in PATIENT_COLUMNS)}) "
            f"ON CONFLICT (patient_id) DO UPDATE SET {updates}",
            values,
        )
        survival_subjects.write(cur, patient_id, views)

    # -- erasure -------------------------------------------------------------------------------

    PATIENT_TABLES = ("ol_docs", "ol_patients", survival_subjects.TABLE)

    def forget(self, patient_id: str) -> None:
        """Delete every stored row and document of one patient (idempotent), and leave no copy
        of them on disk (secure_delete zeroes the rows; the WAL is checkpointed; PostgreSQL
        vacuums the tables). The change audit keeps the events' clear envelopes (who recorded
        which type when), without their clinical date, body or correction reason."""
        self._histories.pop(patient_id, None)  # the projector's decoded history of it too
        secure(self.db)
        with self.db.transaction(write=True) as cur:
            for table in self.PATIENT_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE patient_id = ?", (patient_id,))
            cur.execute(
                "UPDATE ol_events SET occurred = '', reason = NULL, body = '' WHERE patient_id = ?",
                (patient_id,),
            )
        # Earlier versions of its documents sit in free pages: VACUUM drops them (SQLite).
        scrub(self.db, ["ol_events", *self.PATIENT_TABLES], vacuum=True)

    def rebuild(self, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop every view and build it again from the first event."""
        self.drop()
        self.create()
        applied = self.catch_up(progress=progress, batch=REBUILD_BATCH)
        self.analyze()
        return applied

    def analyze(self) -> None:
        """Refresh the planner's statistics, so cohort filters pick the right index."""
        with self.db.transaction(write=True) as cur:
            cur.execute("ANALYZE ol_patients")

    # -- reads ---------------------------------------------------------------------------------

    def doc(self, patient_id: str, view: str) -> bytes | None:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT doc FROM ol_docs WHERE patient_id = ? AND view = ?", (patient_id, view)
            )
            row = cur.fetchone()
        return row[0].encode() if row else None

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

    def patients(
        self,
        *,
        filters: dict[str, Any] | None = None,
        sort: str = "patient_id",
        limit: int = 50,
        cursor: str | None = None,
        count: bool = False,
    ) -> readmodels.PatientPage:
        """The cohort index: filter on any column, sort by any column, page with a cursor.

        `total` (how many rows match) is counted only when asked: over a large cohort the
        count costs far more than the page itself."""
        where, params = _where(filters or {})
        descending = sort.startswith("-")
        column = sort.removeprefix("-")
        if column not in PATIENT_COLUMNS:
            raise ValidationFailed(
                f"`sort` must be one of {', '.join(PATIENT_COLUMNS)} (prefix - for descending)",
                field="sort",
                rule="sort_column",
            )
        if not 1 <= limit <= 1000:
            raise ValidationFailed("`limit` must be 1 to 1000", field="limit", rule="range")
        offset = _decode_cursor(cursor)
        direction = "DESC" if descending else "ASC"
        # Missing values sort as the smallest, on both databases (SQLite's own order), and the
        # plain column order lets the (column, patient_id) index serve the sort.
        nulls = ""
        if self.db.is_postgres:
            nulls = " NULLS LAST" if descending else " NULLS FIRST"
        order = f"{column} {direction}{nulls}, patient_id {direction}"
        if column == "patient_id":
            order = f"patient_id {direction}"
        with self.db.transaction() as cur:
            cur.execute("SELECT position FROM ol_tracking WHERE name = ?", (TRACKING_NAME,))
            tracked = cur.fetchone()
            position = int(tracked[0]) if tracked else 0
            total = None
            if count:
                cur.execute(f"SELECT COUNT(*) FROM ol_patients{where}", params)
                total = int(cur.fetchone()[0])
            cur.execute(
                f"SELECT {', '.join(PATIENT_COLUMNS)} FROM ol_patients{where} "
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, limit + 1, offset],
            )
            rows = cur.fetchall()
        more = len(rows) > limit
        return readmodels.PatientPage(
            patients=[_patient_row(r) for r in rows[:limit]],
            next_cursor=_encode_cursor(offset + limit) if more else None,
            total=total,
            position=position,
            lag=max(0, self.head() - position),
        )

    def status(self) -> dict[str, int]:
        position, head = self.position(), self.head()
        lag = max(0, head - position)
        return {"position": position, "head": head, "lag": lag, "behind": lag}

    # -- per-patient reads that know whether they are current ----------------------------------

    def doc_at(self, patient_id: str, view: str, version: int) -> bytes | None:
        """The stored document of a view, only if the views have applied exactly `version`
        events of the patient's stream (else None: the caller derives it from the stream)."""
        with self.db.transaction() as cur:
            if self._version(cur, patient_id) != version:
                return None
            cur.execute(
                "SELECT doc FROM ol_docs WHERE patient_id = ? AND view = ?", (patient_id, view)
            )
            row = cur.fetchone()
        return row[0].encode() if row else None

    def patient_at(self, patient_id: str, version: int) -> readmodels.PatientRow | None:
        """The cohort row, only if the views have applied exactly `version` of its events."""
        with self.db.transaction() as cur:
            if self._version(cur, patient_id) != version:
                return None
            cur.execute(
                f"SELECT {', '.join(PATIENT_COLUMNS)} FROM ol_patients WHERE patient_id = ?",
                (patient_id,),
            )
            row = cur.fetchone()
        return None if row is None else _patient_row(row)

    @staticmethod
    def _version(cur: Cursor, patient_id: str) -> int:
        cur.execute("SELECT MAX(version) FROM ol_events WHERE patient_id = ?", (patient_id,))
        row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0


def _erased_row(n: Any) -> list[Any]:
    """The change-audit row of an erased patient's event: its clear envelope, no content."""
    clear = envelope_of(bytes(n.state))
    return [
        str(clear.get("event_id")),
        n.id,
        str(n.originator_id),
        n.originator_version,
        str(clear.get("type")),
        "",
        str(clear.get("recorded_at") or ""),
        str(clear.get("recorded_by") or ""),
        str(clear.get("source") or ""),
        clear.get("target_event_id"),
        None,
        "",
    ]


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "synthetic":
            clauses.append(_synthetic_clause(bool(value), params))
            continue
        if key in _EQUALITY_FILTERS:
            values = value if isinstance(value, list | tuple) else [value]
            if any("\x00" in str(v) for v in values):
                raise ValidationFailed(f"`{key}` contains a NUL character", field=key, rule="text")
            clauses.append(f"{key} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
            continue
        column, _, bound = key.rpartition("_")
        if column in _RANGE_FILTERS and bound in ("min", "max"):
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValidationFailed(f"`{key}` is out of range", field=key, rule="range")
            clauses.append(f"{column} {'>=' if bound == 'min' else '<='} ?")
            params.append(_iso(value) if isinstance(value, datetime) else value)
            continue
        raise ValidationFailed(
            f"unknown filter {key!r}: use synthetic, one of {', '.join(_EQUALITY_FILTERS)} or "
            f"{', '.join(c + '_min/_max' for c in _RANGE_FILTERS)}",
            field=key,
            rule="filter",
        )
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _synthetic_clause(synthetic: bool, params: list[Any]) -> str:
    """Synthetic patients by their reserved id prefixes (`domain.synthetic`)."""
    tests = []
    for prefix in SYNTHETIC_ID_PREFIXES:
        tests.append("substr(patient_id, 1, ?) = ?")
        params.extend([len(prefix), prefix])
    either = " OR ".join(tests)
    return f"({either})" if synthetic else f"NOT ({either})"


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    """The offset of a cursor `_encode_cursor` made, and nothing else: anything this server
    could not have handed out (other text, another encoding, an offset no query can reach)."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        text = ""
    digits = text.removeprefix("o:")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        digits = "0"  # not an offset: refused below
    offset = int(digits)
    if offset < 1 or _encode_cursor(offset) != cursor:
        raise ValidationFailed(
            "`cursor` is not one this server handed out: pass a page's `next_cursor` as it is",
            field="cursor",
            rule="cursor",
        )
    return offset


def _column_safe(values: Sequence[Any]) -> list[Any]:
    """Values a column of either database can hold. The ledger refuses NUL in text now, but
    an older version stored some; the views show it as U+FFFD rather than refuse the event
    (PostgreSQL text cannot hold NUL). Documents (JSON) keep it, escaped."""
    return [
        v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in values
    ]


def _patient_row(row: Sequence[Any]) -> readmodels.PatientRow:
    data = dict(zip(PATIENT_COLUMNS, row, strict=True))
    return msgspec.convert(data, readmodels.PatientRow, strict=False)


def _iso(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so stored instants compare correctly as strings."""
    return None if value is None else iso_utc(value)
