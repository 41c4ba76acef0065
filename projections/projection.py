"""What applying a batch of notifications writes, from kept per-patient states.

`Projection` turns notifications (stored events in recording order) into the rows of the views
(`projections.views_schema`): a change-audit row per event, and the cohort and survival rows of
each patient touched, from the patient's `PatientState` kept in memory (least recently used
first). A patient not kept, or kept at another version (another projector applied events of
it), is read once from the ledger's stream. The stored views apply it in their transaction
(`Views`); a rebuild may run it in worker processes (`projections.rebuild_workers`).
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from domain.codec import decode_stored
from domain.ledger.application import Ledger
from domain.ledger.db import Cursor
from domain.ledger.patient_keys import MAGIC, envelope_of
from projections import survival_subjects
from projections.cohort_index import PATIENT_COLUMNS, _column_safe, _iso
from projections.patient_state import PatientState
from projections.views_schema import INSERT_EVENTS

log = logging.getLogger(__name__)

STATE_CACHE = 2000  # patients whose state is kept in memory

Rows = tuple[list[Sequence[Any]], list[list[Any]], list[tuple[Any, ...]]]

_PATIENT_UPSERT = (
    f"INSERT INTO ol_patients ({', '.join(PATIENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in PATIENT_COLUMNS)}) "
    f"ON CONFLICT (patient_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in PATIENT_COLUMNS[1:])
)
_SURVIVAL_UPSERT = (
    f"INSERT INTO {survival_subjects.TABLE} ({', '.join(survival_subjects.COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in survival_subjects.COLUMNS)}) "
    f"ON CONFLICT (patient_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in survival_subjects.COLUMNS[1:])
)
_LAST_RECORDED = PATIENT_COLUMNS.index("last_recorded_at")


# A stored event as a projection reads it: (notification id, patient id, version, topic,
# stored state), a plain tuple (the library's Notification objects, or even named tuples, cost
# more to make than the rest of reading them).
Note = tuple[int, str, int, str, bytes]
# The patients of one process of a rebuild: ids from `low` (inclusive) up to `high` (exclusive);
# None is open-ended (`projections.rebuild_workers`).
Part = tuple[str | None, str | None]


def notifications(
    ledger: Ledger, start: int, limit: int, stop: int | None = None, part: Part | None = None
) -> list[Note]:
    """The stored events from notification id `start` on (up to `stop`, inclusive), at most
    `limit`; with `part`, only those of the patients in it. On SQLite, the patients are picked
    by the query: a rebuild's process turns only the rows of its own patients into objects."""
    recorder = ledger.recorder
    low, high = part if part is not None else (None, None)
    if (
        isinstance(recorder, SQLiteApplicationRecorder)
        and recorder.datastore.originator_id_type != "uuid"
    ):
        # `+originator_id`: the rowid range is walked, never the (patient, version) index.
        where = "".join(
            clause
            for clause, bound in (
                (" AND +originator_id >= ?", low),
                (" AND +originator_id < ?", high),
            )
            if bound is not None
        )
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state FROM "
                f"{recorder.events_table_name} WHERE rowid >= ? AND rowid <= ?{where} "
                "ORDER BY rowid LIMIT ?",
                (
                    start,
                    (1 << 62) if stop is None else stop,
                    *(b for b in (low, high) if b is not None),
                    limit,
                ),
            )
            rows: list[Note] = c.fetchall()
            return rows
    return [
        (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
        for n in recorder.select_notifications(start, limit, stop=stop)
        if in_part(str(n.originator_id), part)
    ]


def in_part(patient_id: str, part: Part | None) -> bool:
    if part is None:
        return True
    low, high = part
    return (low is None or patient_id >= low) and (high is None or patient_id < high)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A rebuild allocates millions of short-lived objects without reference cycles, while
    the process holds many long-lived ones: the cyclic collector's passes over both cost about
    a tenth of a rebuild. For its duration, what the process held before is left out of those
    passes (`gc.freeze`) and they run less often; cyclic garbage is still collected, later."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def write_rows(
    cur: Cursor,
    events: Sequence[Sequence[Any]],
    patients: Sequence[Sequence[Any]],
    survival: Sequence[Sequence[Any]],
) -> None:
    cur.executemany(INSERT_EVENTS, events)
    cur.executemany(_PATIENT_UPSERT, patients)
    cur.executemany(_SURVIVAL_UPSERT, survival)


class Projection:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._states: OrderedDict[str, PatientState] = OrderedDict()

    def clear(self) -> None:
        self._states.clear()

    def forget(self, patient_id: str) -> None:
        self._states.pop(patient_id, None)

    def rows(self, notifications: Sequence[Note]) -> Rows:
        """The rows a batch of notifications writes: its change-audit rows, and the cohort and
        survival rows of every patient it touched."""
        touched: dict[str, PatientState | None] = {}
        rows: list[Sequence[Any]] = []
        # Each patient's erasure and opener of sealed states (its key and cipher), looked up
        # once per batch (opener None: no key, the mapper's own path says why).
        seen: dict[str, tuple[bool, Callable[[int, bytes], bytes] | None]] = {}
        keys = self.ledger.keys
        if keys is not None:  # the batch's keys in one query, not one per patient
            keys.preload(n[1] for n in notifications)
        plaintext_of = self.ledger.plaintext
        is_erased = self.ledger.is_erased
        type_name = _type_name
        # The patient of the previous event, whose lookups the next usually shares (a
        # patient's events are mostly contiguous); any other patient goes through the dicts.
        current: str | None = None
        gone = False
        opener: Callable[[int, bytes], bytes] | None = None
        state: PatientState | None = None
        unknown = False
        for n in notifications:
            position, patient_id, version, topic, stored = n
            if patient_id != current:
                if current is not None and not unknown:
                    touched[current] = state
                known = seen.get(patient_id)
                if known is None:
                    gone = is_erased(patient_id)
                    opener = keys.opener(patient_id) if keys is not None and not gone else None
                    seen[patient_id] = (gone, opener)
                else:
                    gone, opener = known
                # Its state, from its first event that can be read on (`unknown`: not yet).
                unknown = patient_id not in touched
                state = None if unknown else touched[patient_id]
                current = patient_id
            if gone:
                rows.append(_erased_row(n))  # the clear envelope only (see `forget`)
                continue
            try:
                if opener is not None and stored[:4] == MAGIC:
                    plaintext = opener(version, bytes(stored))
                else:
                    plaintext = plaintext_of(
                        StoredEvent(
                            originator_id=patient_id,
                            originator_version=version,
                            topic=topic,
                            state=stored,
                        )
                    )
                entry = decode_stored(plaintext)
            except Exception:
                # A stream whose payloads cannot be read must not stall every other patient's
                # views: skipped, and said so in the log.
                log.warning(
                    "event %s of patient %s cannot be read; skipped",
                    position,
                    patient_id,
                    exc_info=True,
                )
                continue
            target = getattr(entry, "target_event_id", None)
            recorded_at = entry.recorded_at
            event = (
                str(entry.event_id),
                position,
                patient_id,
                version,
                type_name(entry),
                # `iso_utc` (fixed-width UTC text), inline for what is UTC already
                recorded_at.isoformat(timespec="microseconds")[:-6] + "Z"
                if recorded_at is not None and recorded_at.tzinfo is UTC
                else _iso(recorded_at),
                entry.recorded_by or "",
                entry.source or "",
                str(target) if target else None,
                getattr(entry, "reason", None) if target else None,
            )
            # A NUL in any text of the event shows in its JSON as an escape.
            rows.append(_column_safe(event) if b"\\u0000" in plaintext else event)
            if unknown:
                state = self._state(patient_id, version)
                unknown = False
            if state is None:
                continue
            try:
                if state.items.version != version - 1:
                    raise ValueError(f"version {version} after {state.version}")
                state.apply(entry)
            except Exception:
                log.exception("read models of patient %s could not be computed", patient_id)
                state = None
        if current is not None and not unknown:
            touched[current] = state
        patients: list[list[Any]] = []
        survival: list[tuple[Any, ...]] = []
        for patient_id, state in touched.items():
            if state is None:
                continue  # its previous rows stay; the failure is logged
            try:
                row, survival_row = state.rows()
            except Exception:
                # One stream the read models cannot digest must not stall the views of all
                # others: its previous rows stay, the failure is logged, the catch-up moves on.
                log.exception("read models of patient %s could not be computed", patient_id)
                continue
            values = _column_safe([getattr(row, col) for col in PATIENT_COLUMNS])
            values[_LAST_RECORDED] = _instant_text(row.last_recorded_at)
            patients.append(values)
            survival.append(survival_row)
            self._states[patient_id] = state
        while len(self._states) > STATE_CACHE:
            self._states.popitem(last=False)
        return rows, patients, survival

    def _state(self, patient_id: str, version: int) -> PatientState | None:
        """The patient's state after its first `version - 1` events: kept, else read once from
        the ledger's stream (a kept state of another version is stale: another projector
        applied events of it)."""
        state = self._states.pop(patient_id, None)
        if state is not None and state.version == version - 1:
            return state
        if version == 1:
            return PatientState(patient_id)
        try:
            return PatientState(patient_id, self.ledger.history(patient_id, upto=version - 1))
        except Exception:
            log.exception("the stream of patient %s could not be read", patient_id)
            return None


_TYPE_NAMES: dict[type, str] = {}


def _type_name(entry: Any) -> str:
    """The event's type (its tag), looked up by class rather than made again per event."""
    cls = type(entry)
    name = _TYPE_NAMES.get(cls)
    if name is None:
        name = _TYPE_NAMES[cls] = entry.type
    return name


def _instant_text(value: datetime | None) -> str | None:
    """`iso_utc` (fixed-width UTC text), without its parsing for what is UTC already."""
    if value is not None and value.tzinfo is UTC:
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    return _iso(value)


def _erased_row(n: Note) -> list[Any]:
    """The change-audit row of an erased patient's event: its clear envelope, no content."""
    position, patient_id, version, _, stored = n
    clear = envelope_of(bytes(stored))
    return [
        str(clear.get("event_id")),
        position,
        patient_id,
        version,
        str(clear.get("type")),
        str(clear.get("recorded_at") or ""),
        str(clear.get("recorded_by") or ""),
        str(clear.get("source") or ""),
        clear.get("target_event_id"),
        None,
    ]
