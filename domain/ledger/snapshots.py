"""Per-patient snapshots: a long stream's aggregate, so that a cold load reads one row.

A snapshot holds the first `version` entries of a patient's stream (each as stored), their
event ids, and the state its clinical events in force had then (`domain.in_force.State`: each
item's version and its corrections', the clinical order, the tracked types), one MessagePack
array sealed under the patient's own data key (AES-GCM, `domain.ledger.patient_keys`) with the
format, the patient id, the version and the chain head it claims bound to it as associated
data. What a load restores from it is the aggregate as the events would give it
(`Patient.restored`: the same entries, idempotency keys, items, order and tracked bodies as
`Patient.apply` over them gives, tested against that fold), without applying the entries
again and without decoding them: each entry stays the snapshot's bytes until it is read
(`domain.stream_entries`; a cold load of 1,000 events decodes the hundred or so its rules
need: corrections, their targets, deaths and diagnoses, the last entry).

A snapshot is trusted only when it opens under the patient's key (so it was written by this
ledger, from a stream it held as one chain, and not altered since), it holds `version`
entries, its last entry is that version with the hash it claims as head, and that head is the
hash of the event the store holds at that version (the caller checks that against the stored
event, read anyway with the events after it). Each entry is checked to be its version and
event id when it is decoded. Anything else, a missing key, another format, a failed check, is
a full load from the events: snapshots are derived, never a source of truth (`verify` and the
export prove the chain from the events alone). Erasure destroys the patient's key, which makes
its snapshot unreadable; the row is deleted as well. Stores without a master key keep no
snapshots (nothing would authenticate them). A snapshot of another format (v1 held only the
entries, v2 no event ids apart) does not open under this one's associated data: it is never
misread, and the patient's next append writes it again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag

from domain import events as ev
from domain.in_force import State
from domain.ledger.patient_keys import PatientKeys, secure
from domain.patient import EVENT_CLASS_BY_TOPIC, Patient
from domain.stream_entries import Entries

log = logging.getLogger(__name__)

# A snapshot is written once a stream has this many events more than its last snapshot.
INTERVAL = 100
_NONCE = 12
# The entries' shape: a snapshot written under other class versions is not read (its entries
# would need the upcasting the mapper does on events).
FORMAT = "oncoledger snapshot v3 msgpack " + ",".join(
    f"{topic}={cls.class_version}" for topic, cls in sorted(EVENT_CLASS_BY_TOPIC.items())
)
_KNOWN = 100_000  # patients whose snapshot version this process remembers

SCHEMA_SQLITE = """CREATE TABLE IF NOT EXISTS ol_snapshots (
    patient_id TEXT PRIMARY KEY, version INTEGER NOT NULL, head TEXT NOT NULL,
    state BLOB NOT NULL)"""
SCHEMA_POSTGRES = """CREATE TABLE IF NOT EXISTS ol_snapshots (
    patient_id TEXT PRIMARY KEY, version BIGINT NOT NULL, head TEXT NOT NULL,
    state BYTEA NOT NULL)"""

# (entries, their event ids, the state of their clinical events in force), as MessagePack (ids
# as 16 bytes, instants as timestamps). The entries are read as each one's bytes and decoded
# one by one when read (`domain.stream_entries`).
_decoder = msgspec.msgpack.Decoder(tuple[list[msgspec.Raw], list[UUID], State])
_entry_decoder = msgspec.msgpack.Decoder(ev.TrustedEvent)
_encoder = msgspec.msgpack.Encoder(uuid_format="bytes")


def encoded(patient: Patient) -> bytes:
    """What a snapshot of `patient` at its version holds, before it is sealed."""
    entries, version = patient.entries, patient.version
    state = patient.in_force.state()
    return _encoder.encode((entries.stored(version), entries.ids[:version], state))


def opened(plain: bytes) -> tuple[Entries, State]:
    """The entries (each decoded when first read) and the state a snapshot holds; raises
    msgspec.DecodeError, or ValueError for entries and ids that are not as many."""
    raws, ids, state = _decoder.decode(plain)
    return Entries(raws, ids, _entry_decoder.decode), state


class Snapshots:
    def __init__(self, keys: PatientKeys) -> None:
        self.keys = keys
        self.db = keys.db
        self._lock = threading.Lock()
        self._taken: dict[str, int] = {}  # patient id -> version of its latest snapshot
        with self.db.transaction(write=True) as cur:
            if self.db.is_postgres:
                cur.execute("SELECT pg_advisory_xact_lock(7316013)")
            cur.execute(SCHEMA_POSTGRES if self.db.is_postgres else SCHEMA_SQLITE)

    def load(
        self, patient_id: str, events_after: Callable[[int], Iterable[ev.AnyEvent]]
    ) -> Patient | None:
        """The patient from its snapshot and the stored events after it (`events_after(n)`:
        the entries after version n); None when it has no snapshot this can trust."""
        restored = self.restore(patient_id)
        if restored is None:
            return None
        patient, head = restored
        tail = iter(events_after(patient.version - 1))
        at = next(tail, None)
        if at is None or at.version != patient.version or at.hash != head:
            # The store's event at that version is not the head the snapshot claims (a
            # replaced or restored store, say): the events decide.
            log.warning("the snapshot of patient %s is not of its stored chain", patient_id)
            self._remember(patient_id, 0, again=True)
            return None
        for entry in tail:
            patient.apply(entry)
        return patient

    def restore(self, patient_id: str) -> tuple[Patient, str] | None:
        """The patient as its snapshot holds it and the head it claims; None: no snapshot, or
        one that does not open under the patient's key or is not one chain."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT version, head, state FROM ol_snapshots WHERE patient_id = ?",
                (patient_id,),
            )
            row = cur.fetchone()
        if row is None:
            self._remember(patient_id, 0)
            return None
        version, head, state = int(row[0]), str(row[1]), bytes(row[2])
        self._remember(patient_id, version)
        key = self.keys.key(patient_id)
        if key is None or len(state) <= _NONCE:
            return None
        try:
            view = memoryview(state)  # not sliced into copies: a long stream's are big
            plain = self.keys.cipher(key).decrypt(
                view[:_NONCE], view[_NONCE:], _aad(patient_id, version, head)
            )
            entries, in_force = opened(plain)
        except (InvalidTag, msgspec.DecodeError, ValueError):
            # Altered, of another slot, or of another format (an older version of this one).
            log.warning(
                "the snapshot of patient %s does not open; loaded from its events", patient_id
            )
            self._remember(patient_id, 0, again=True)
            return None
        if len(entries) != version:
            log.warning(
                "the snapshot of patient %s is not of its version; loaded from its events",
                patient_id,
            )
            self._remember(patient_id, 0, again=True)
            return None
        try:
            patient = Patient.restored(patient_id, entries, in_force)
            if patient.head_hash != head:
                raise ValueError("the snapshot's last entry is not its head")
            return patient, head
        except (ValueError, LookupError, TypeError, AttributeError, msgspec.DecodeError):
            log.warning(
                "the snapshot of patient %s does not fit its entries; loaded from its events",
                patient_id,
            )
            self._remember(patient_id, 0, again=True)
            return None

    def due(self, patient: Patient) -> bool:
        """Has the stream grown by `INTERVAL` events since its last snapshot?"""
        with self._lock:
            taken = self._taken.get(patient.id)
        return taken is not None and patient.version - taken >= INTERVAL

    def save(self, patient: Patient) -> None:
        """Write the patient's snapshot at its version (never fails the caller: logged)."""
        try:
            self._save(patient)
        except Exception:
            log.warning("the snapshot of patient %s was not written", patient.id, exc_info=True)

    def _save(self, patient: Patient) -> None:
        key = self.keys.key(patient.id)
        if key is None or not patient.entries:
            return
        version, head = patient.version, patient.head_hash
        if len(patient.entries) < version or patient.entries[version - 1].hash != head:
            return  # moved meanwhile (a reader caught it up): the next append takes one
        if patient.in_force.version != version:
            return  # not the fold of these entries (never so for a patient the ledger keeps)
        nonce = os.urandom(_NONCE)
        plain = encoded(patient)
        sealed = self.keys.cipher(key).encrypt(nonce, plain, _aad(patient.id, version, head))
        with self.db.transaction(write=True) as cur:
            # Only while the patient's key is live: a process that still holds the key in
            # memory must not leave a row behind an erasure another process committed.
            cur.execute(
                "INSERT INTO ol_snapshots (patient_id, version, head, state) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM ol_patient_keys "
                "WHERE patient_id = ? AND erased_at IS NULL) "
                "ON CONFLICT (patient_id) DO UPDATE SET version = excluded.version, "
                "head = excluded.head, state = excluded.state "
                "WHERE excluded.version > ol_snapshots.version",
                (patient.id, version, head, nonce + sealed, patient.id),
            )
        self._remember(patient.id, version)

    def forget(self, patient_id: str) -> None:
        """Delete the patient's snapshot, leaving no copy on disk (erasure: its key is
        destroyed already, so what was written can never be opened again anyway)."""
        secure(self.db)
        with self.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM ol_snapshots WHERE patient_id = ?", (patient_id,))
        with self._lock:
            self._taken.pop(patient_id, None)
        self.keys.scrub(["ol_snapshots"])

    def _remember(self, patient_id: str, version: int, *, again: bool = False) -> None:
        """`version`: the patient's latest snapshot; `again`: none of it can be used, so the
        next append takes one (once: `_save` remembers the version it wrote, or tried to)."""
        with self._lock:
            if len(self._taken) >= _KNOWN:
                self._taken.clear()
            known = 0 if again else self._taken.get(patient_id, 0)
            self._taken[patient_id] = max(version, known)


def _aad(patient_id: str, version: int, head: str) -> bytes:
    return f"{FORMAT}\n{patient_id}\n{version}\n{head}".encode()
