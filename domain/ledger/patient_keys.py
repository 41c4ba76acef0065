"""Per-patient data keys (crypto-shredding): each patient's payloads under a key of its own.

A patient's first event creates a random 256-bit data key; the key table keeps it wrapped
(AES-GCM) by the master key ONCOLEDGER_CIPHER_KEY, bound to the patient id as associated data
so a wrapped key moved to another row does not unwrap. Erasure overwrites the wrapped key with
NULL and keeps who erased, when and why: with the key gone, the patient's ciphertexts can never
be decrypted again, while their clear envelopes (ids, versions, hashes) keep the chain provable.

Keys are unwrapped once per patient per process and kept in memory, so reading or writing an
event adds no round trip. The table lives beside the ledger and is never rebuilt; a backup that
holds it holds every patient's key (restoring it would undo an erasure).
"""

from __future__ import annotations

import base64
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.errors import Gone, NotFound, ValidationFailed
from domain.ledger.db import PostgresDb, SqliteDb

SCHEMA = """CREATE TABLE IF NOT EXISTS ol_patient_keys (
    patient_id TEXT PRIMARY KEY, wrapped TEXT, created_at TEXT NOT NULL,
    erased_at TEXT, erased_by TEXT, erased_reason TEXT)"""

# A stored state in the per-patient format: MAGIC, the envelope's length (4 bytes, big-endian),
# the envelope JSON in clear, a 12-byte nonce, the AES-GCM ciphertext of the event JSON.
MAGIC = b"OLE1"
_NONCE = 12
_WRAP_AAD = b"oncoledger patient key v1 "
# The envelope: what a verifier and an auditor need, in clear (SPEC §6 fields and addressing).
ENVELOPE_FIELDS = (
    "type",
    "event_id",
    "recorded_at",
    "recorded_by",
    "source",
    "target_event_id",
    "prev_hash",
    "hash",
)
_encoder = msgspec.json.Encoder(order="sorted")


class _Slot(msgspec.Struct):
    """The slot an envelope names (its other fields are not needed to open the state)."""

    stream: str | None = None
    version: int | None = None


_slot_decoder = msgspec.json.Decoder(_Slot)
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]+\Z")
# Seconds a live key is used from memory before the key table is asked again (erasures made by
# another process reach this one within that time).
RECHECK = 1.0
# Keys and ciphers kept in memory at most, the earliest made dropped first: a process that reads
# every patient (a rebuild) keeps its memory flat whatever the number of patients.
KEYS_KEPT = 65_536
CIPHERS_KEPT = 4_096


@dataclass(frozen=True)
class Erasure:
    """The attributed record of one erasure: who, when, why (no clinical content)."""

    patient_id: str
    erased_at: str
    erased_by: str
    reason: str
    created: bool = True


class PatientKeys:
    """The key table and the keys this process has unwrapped."""

    def __init__(self, db: SqliteDb | PostgresDb, master_key: str) -> None:
        self.db = db
        self._master = AESGCM(base64.b64decode(master_key))
        self._cache: dict[str, tuple[bytes | None, float]] = {}
        # Ciphers of live keys; an erased patient's key is dropped with its entry (`_remember`).
        self._aeads: dict[bytes, AESGCM] = {}
        self._lock = threading.Lock()
        with db.transaction(write=True) as cur:
            if db.is_postgres:
                cur.execute("SELECT pg_advisory_xact_lock(7316012)")
            cur.execute(SCHEMA)

    # -- keys ----------------------------------------------------------------------------------

    def key(self, patient_id: str, *, create: bool = False) -> bytes | None:
        """The patient's data key; None when it was erased (or, without `create`, never made)."""
        hit, key = self._cached(patient_id)
        if hit:
            return key
        row = self._row(patient_id)
        if row is None and create:
            wrapped = self._wrap(patient_id, AESGCM.generate_key(bit_length=256))
            with self.db.transaction(write=True) as cur:
                cur.execute(
                    "INSERT INTO ol_patient_keys (patient_id, wrapped, created_at) "
                    "VALUES (?, ?, ?) ON CONFLICT (patient_id) DO NOTHING",
                    (patient_id, wrapped, _now()),
                )
            row = self._row(patient_id)  # another process may have made it first: theirs wins
        if row is None:
            return None
        key = self._unwrap(patient_id, row[0]) if row[0] is not None else None
        self._remember(patient_id, key)
        return key

    def is_erased(self, patient_id: str) -> bool:
        hit, key = self._cached(patient_id)
        if hit:
            return key is None
        row = self._row(patient_id)
        if row is None:
            return False
        key = self._unwrap(patient_id, row[0]) if row[0] is not None else None
        self._remember(patient_id, key)
        return key is None

    def live_age(self, patient_id: str) -> float | None:
        """Seconds since this process last read the patient's live key from the table; None
        when it holds no live key for it. No I/O (for a caller that must not wait)."""
        with self._lock:
            known = self._cache.get(patient_id)
        if known is None or known[0] is None:
            return None
        return time.monotonic() - known[1]

    def _cached(self, patient_id: str) -> tuple[bool, bytes | None]:
        """A key known to this process. A live key is asked for again after `RECHECK` seconds,
        so an erasure made by another process takes effect here within that time, at the cost
        of one primary-key lookup per patient per `RECHECK` (never one per event)."""
        with self._lock:
            known = self._cache.get(patient_id)
        if known is None:
            return False, None
        key, checked = known
        if key is None or time.monotonic() - checked < RECHECK:
            return True, key
        return False, None

    def _remember(self, patient_id: str, key: bytes | None) -> None:
        with self._lock:
            known = self._cache.get(patient_id)
            if key is None and known is not None and known[0] is not None:
                self._aeads.pop(known[0], None)
            self._cache[patient_id] = (key, time.monotonic())
            if len(self._cache) > KEYS_KEPT:  # the earliest remembered go first
                del self._cache[next(iter(self._cache))]

    def cipher(self, key: bytes) -> AESGCM:
        """The cipher of a data key, made once while kept (making one costs more than a
        decryption; each holds a few KiB, so only the `CIPHERS_KEPT` latest are kept)."""
        aead = self._aeads.get(key)
        if aead is None:
            aead = AESGCM(key)
            with self._lock:
                self._aeads[key] = aead
                if len(self._aeads) > CIPHERS_KEPT:
                    del self._aeads[next(iter(self._aeads))]
        return aead

    def preload(self, patient_ids: Iterable[str], *, again: bool = False) -> None:
        """Unwrap the keys of these patients that this process does not hold (`again`: all of
        them, read anew), in one query per 500 (a rebuild or a projector batch asks for many
        patients' keys at once)."""
        wanted = [p for p in dict.fromkeys(patient_ids) if again or not self._cached(p)[0]]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            with self.db.transaction() as cur:
                cur.execute(
                    "SELECT patient_id, wrapped FROM ol_patient_keys WHERE patient_id IN "
                    f"({', '.join('?' for _ in chunk)})",
                    chunk,
                )
                rows = cur.fetchall()
            for patient_id, wrapped in rows:
                key = self._unwrap(patient_id, wrapped) if wrapped is not None else None
                self._remember(patient_id, key)

    def has_key(self, patient_id: str) -> bool:
        return self._row(patient_id) is not None

    def _row(self, patient_id: str) -> Any:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT wrapped, erased_at FROM ol_patient_keys WHERE patient_id = ?",
                (patient_id,),
            )
            return cur.fetchone()

    def _wrap(self, patient_id: str, key: bytes) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._master.encrypt(nonce, key, _WRAP_AAD + patient_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def _unwrap(self, patient_id: str, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        try:
            return self._master.decrypt(raw[:_NONCE], raw[_NONCE:], _WRAP_AAD + patient_id.encode())
        except InvalidTag:
            raise ValidationFailed(
                f"ONCOLEDGER_CIPHER_KEY does not unwrap the data key of patient {patient_id}: "
                "set the master key the store's keys were wrapped with",
                field="ONCOLEDGER_CIPHER_KEY",
                rule="cipher_key",
            ) from None

    # -- erasure -------------------------------------------------------------------------------

    def erase(self, patient_id: str, *, actor: str, reason: str) -> Erasure:
        """Destroy the patient's key (idempotent: a second call answers with the first erasure)."""
        secure(self.db)
        with self.db.transaction(write=True) as cur:
            cur.execute(
                "SELECT wrapped, erased_at, erased_by, erased_reason FROM ol_patient_keys "
                "WHERE patient_id = ?",
                (patient_id,),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(
                    f"patient {patient_id} has no data key: not registered, or recorded before "
                    "per-patient keys",
                    field="patient_id",
                )
            if row[0] is None:
                return Erasure(patient_id, row[1], row[2], row[3], created=False)
            erased_at = _now()
            cur.execute(
                "UPDATE ol_patient_keys SET wrapped = NULL, erased_at = ?, erased_by = ?, "
                "erased_reason = ? WHERE patient_id = ?",
                (erased_at, actor, reason, patient_id),
            )
        self._remember(patient_id, None)
        self.scrub(["ol_patient_keys"])
        return Erasure(patient_id, erased_at, actor, reason)

    def erasures(self) -> list[Erasure]:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT patient_id, erased_at, erased_by, erased_reason FROM ol_patient_keys "
                "WHERE erased_at IS NOT NULL ORDER BY erased_at, patient_id"
            )
            return [Erasure(r[0], r[1], r[2], r[3], created=False) for r in cur.fetchall()]

    def erasure(self, patient_id: str) -> Erasure | None:
        return next((e for e in self.erasures() if e.patient_id == patient_id), None)

    def scrub(self, tables: list[str]) -> None:
        """Leave no copy of deleted rows on disk (SQLite: checkpoint the WAL after a
        secure_delete write; PostgreSQL: VACUUM the tables)."""
        scrub(self.db, tables)

    # -- rotation ------------------------------------------------------------------------------

    def rotate(self, new_master_key: str, also: Callable[[Any], None] = lambda cur: None) -> int:
        """Re-wrap every live patient key under `new_master_key` (the events are not touched);
        `also(cursor)` runs in the same transaction (the key check moves with the keys)."""
        new = PatientKeys.__new__(PatientKeys)
        new._master = AESGCM(base64.b64decode(new_master_key))
        count = 0
        secure(self.db)
        with self.db.transaction(write=True) as cur:
            also(cur)
            cur.execute("SELECT patient_id, wrapped FROM ol_patient_keys WHERE wrapped IS NOT NULL")
            rows = cur.fetchall()
            for patient_id, wrapped in rows:
                key = self._unwrap(patient_id, wrapped)
                cur.execute(
                    "UPDATE ol_patient_keys SET wrapped = ? WHERE patient_id = ?",
                    (new._wrap(patient_id, key), patient_id),
                )
                count += 1
        self._master = new._master
        self.scrub(["ol_patient_keys"])
        return count

    # -- the stored format -------------------------------------------------------------------

    def seal(self, patient_id: str, version: int, topic: str, entry: Any, plain: bytes) -> bytes:
        """`plain` (the event JSON) encrypted under the patient's key, its envelope in clear
        beside it and bound to it as associated data."""
        key = self.key(patient_id, create=True)
        if key is None:
            raise Gone(
                f"patient {patient_id} was erased; nothing can be recorded for it",
                field="patient_id",
                rule="erased",
            )
        envelope = _envelope(patient_id, version, topic, entry)
        nonce = os.urandom(_NONCE)
        body = self.cipher(key).encrypt(nonce, plain, envelope)
        return MAGIC + struct.pack(">I", len(envelope)) + envelope + nonce + body

    def open(self, patient_id: str, version: int, topic: str, state: bytes) -> bytes:
        """The event JSON of a sealed state; `Gone` for an erased patient, ValueError for a
        state that is not this slot's (moved, altered, or under another key)."""
        envelope, nonce, body = split(state)
        if not _names_slot(envelope, patient_id, version):
            raise ValueError("the envelope names another slot than the one it is stored in")
        key = self.key(patient_id)
        if key is None:
            if self.is_erased(patient_id):
                raise Gone(f"patient {patient_id} was erased", field="patient_id", rule="erased")
            raise ValueError(f"no data key for patient {patient_id}")
        try:
            return self.cipher(key).decrypt(nonce, body, envelope)
        except InvalidTag:
            raise ValueError("the ciphertext does not decrypt in this slot") from None

    def opener(self, patient_id: str) -> Callable[[int, bytes], bytes] | None:
        """`open` for many sealed states of one patient (a batch of a rebuild or a projector
        round): the key and its cipher looked up once, not once per state. None when the
        patient has no key (erased, or never given one): `open` says which."""
        key = self.key(patient_id)
        if key is None:
            return None
        decrypt = self.cipher(key).decrypt
        plain = _PLAIN_ID.match(patient_id) is not None
        stream = b'"stream":"%s",' % patient_id.encode() if plain else b""
        unpack = struct.unpack_from

        def open_one(version: int, state: bytes) -> bytes:
            if state[:4] != MAGIC or len(state) < 8:
                raise ValueError("not a sealed state")
            (size,) = unpack(">I", state, 4)
            end = 8 + size
            envelope = state[8:end]
            if not (
                plain and envelope.endswith(b'"version":%d}' % version) and stream in envelope
            ) and not _names_slot(envelope, patient_id, version):
                raise ValueError("the envelope names another slot than the one it is stored in")
            try:
                return decrypt(state[end : end + _NONCE], state[end + _NONCE :], envelope)
            except InvalidTag:
                raise ValueError("the ciphertext does not decrypt in this slot") from None

        return open_one


def _envelope(patient_id: str, version: int, topic: str, entry: Any) -> bytes:
    envelope: dict[str, Any] = {"stream": patient_id, "version": version, "topic": topic}
    for name in ENVELOPE_FIELDS:
        envelope[name] = entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)
    return _encoder.encode(envelope)


def _names_slot(envelope: bytes, patient_id: str, version: int) -> bool:
    """Does the envelope name this stream and version? The envelope is authenticated by the
    decryption that follows (it is the ciphertext's associated data), so it is one `seal`
    wrote: sorted keys, `version` last, a patient id that JSON writes as it is. Any other
    shape is read in full."""
    if _PLAIN_ID.match(patient_id) and envelope.endswith(b'"version":%d}' % version):
        return (b'"stream":"%s",' % patient_id.encode()) in envelope
    try:
        slot = _slot_decoder.decode(envelope)
    except msgspec.DecodeError:
        return False
    return slot.stream == patient_id and slot.version == version


def is_sealed(state: bytes) -> bool:
    return state[:4] == MAGIC


def split(state: bytes) -> tuple[bytes, bytes, bytes]:
    if not is_sealed(state) or len(state) < 8:
        raise ValueError("not a sealed state")
    (size,) = struct.unpack(">I", state[4:8])
    envelope = state[8 : 8 + size]
    nonce = state[8 + size : 8 + size + _NONCE]
    return envelope, nonce, state[8 + size + _NONCE :]


def envelope_of(state: bytes) -> dict[str, Any]:
    """The clear envelope of a sealed state (readable without any key)."""
    data: dict[str, Any] = msgspec.json.decode(split(state)[0])
    return data


def secure(db: SqliteDb | PostgresDb) -> None:
    if isinstance(db, SqliteDb):
        db.secure()


def scrub(db: SqliteDb | PostgresDb, tables: list[str], *, vacuum: bool = False) -> None:
    if isinstance(db, PostgresDb):
        with db.pool.connection() as conn:
            conn.commit()
            conn.autocommit = True
            try:
                for table in tables:
                    conn.execute(f"VACUUM {table}")
            finally:
                conn.autocommit = False
        return
    if vacuum:
        db.vacuum()
    db.checkpoint()


def _now() -> str:
    return datetime.now(UTC).isoformat()
