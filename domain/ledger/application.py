"""`Ledger`, the service layer: the only way events get into a patient's stream.

Each command loads the patient, calls one aggregate method per event and saves. The library
refuses a save whose versions someone else took first; without an expected version the command
is simply run again on the fresh stream, so concurrent writers never lose or duplicate an event.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from urllib.parse import unquote, urlparse
from uuid import UUID

import msgspec
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    PersistenceError,
    Recording,
    StoredEvent,
)

from domain import events as ev
from domain.errors import (
    Conflict,
    Gone,
    NotFound,
    OutcomeUnknown,
    RuleViolation,
    StaleVersion,
    ValidationFailed,
)
from domain.input_checks import check_storable, in_batch, may_hold_unstorable
from domain.instants import assume_utc
from domain.integrity import (
    ERASED,
    UNDECRYPTABLE,
    ChainReport,
    Digest,
    digest_heads,
    verify_entries,
)
from domain.ledger.db import open_db
from domain.ledger.event_index import EVENT_IDS, recorder_topic
from domain.ledger.mapper import LedgerMapper
from domain.ledger.patient_keys import Erasure, PatientKeys, envelope_of, is_sealed
from domain.ledger.storage_faults import storage_fault
from domain.patient import Patient, Recorded

MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class StoreConfig:
    """Where the ledger lives: one SQLite file, or a PostgreSQL database (and schema)."""

    sqlite_path: str | None = "oncoledger.db"
    database_url: str | None = None
    schema: str | None = None
    cipher_key: str | None = None

    @classmethod
    def from_env(cls, db: str | None = None) -> StoreConfig:
        return cls(
            sqlite_path=db or os.environ.get("ONCOLEDGER_DB") or "oncoledger.db",
            database_url=os.environ.get("ONCOLEDGER_DATABASE_URL") or None,
            schema=os.environ.get("ONCOLEDGER_DATABASE_SCHEMA") or None,
            cipher_key=os.environ.get("ONCOLEDGER_CIPHER_KEY") or None,
        )

    @property
    def is_postgres(self) -> bool:
        return self.database_url is not None

    def library_env(self) -> dict[str, str]:
        env: dict[str, str] = {
            "ORIGINATOR_ID_TYPE": "text",
            "APPLICATION_RECORDER_TOPIC": recorder_topic(self.is_postgres),
        }
        if self.database_url:
            url = urlparse(self.database_url)
            if url.scheme not in ("postgresql", "postgres"):
                raise ValidationFailed(
                    "ONCOLEDGER_DATABASE_URL must start with postgresql://",
                    field="ONCOLEDGER_DATABASE_URL",
                )
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": (url.path or "/").lstrip("/") or "postgres",
                "POSTGRES_HOST": url.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(url.port or 5432),
                "POSTGRES_USER": unquote(url.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(url.password or ""),
                "POSTGRES_POOL_SIZE": "10",
                "POSTGRES_MAX_OVERFLOW": "20",
                "POSTGRES_CONNECT_TIMEOUT": "10",
            }
            if self.schema:
                env["POSTGRES_SCHEMA"] = self.schema
        else:
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path or "oncoledger.db",
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        if self.cipher_key:
            check_key_format(self.cipher_key)
            env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
            env["CIPHER_KEY"] = self.cipher_key
        return env


def check_key_format(key: str) -> None:
    try:
        size = len(base64.b64decode(key, validate=True))
    except ValueError:
        size = -1
    if size not in (16, 24, 32):
        raise ValidationFailed(
            "ONCOLEDGER_CIPHER_KEY must be a base64 AES key of 16, 24 or 32 bytes "
            "(e.g. the output of `openssl rand -base64 32`)",
            field="ONCOLEDGER_CIPHER_KEY",
            rule="cipher_key",
        )


@dataclass(frozen=True)
class Receipt:
    """What an append returns (SPEC §8): enough for the client to cite the stored event."""

    event_id: UUID
    version: int
    recorded_at: datetime
    hash: str
    created: bool


def _receipt(entry: ev.AnyEvent, created: bool) -> Receipt:
    assert entry.event_id and entry.version and entry.recorded_at and entry.hash
    return Receipt(entry.event_id, entry.version, entry.recorded_at, entry.hash, created)


class _Streams:
    """Patients this process has loaded, and a lock per patient (striped).

    Writers to one patient in this process queue on its lock instead of racing each other, and
    a cached patient is brought up to date with only the events stored since (by any process).
    A patient is taken out of the cache while a command works on it and put back only after a
    successful save, so a refused or failed command never leaves half-applied state behind.
    """

    STRIPES = 256

    def __init__(self, maxsize: int = 10_000) -> None:
        self._locks = [threading.Lock() for _ in range(self.STRIPES)]
        self._guard = threading.Lock()
        self._patients: OrderedDict[str, Patient] = OrderedDict()
        self._maxsize = maxsize

    def lock(self, patient_id: str) -> threading.Lock:
        return self._locks[hash(patient_id) % self.STRIPES]

    def take(self, patient_id: str) -> Patient | None:
        with self._guard:
            return self._patients.pop(patient_id, None)

    def put(self, patient: Patient) -> None:
        with self._guard:
            self._patients[patient.id] = patient
            while len(self._patients) > self._maxsize:
                self._patients.popitem(last=False)


class Ledger(Application[str]):
    """The clinical event ledger: patients' streams in one event store."""

    name = "OncoLedger"

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig.from_env()
        # Called after every save by this process (the live feed wakes its followers).
        self.on_saved: Callable[[], None] = lambda: None
        self._streams = _Streams()
        for attempt in range(5):
            try:
                super().__init__(env=self.config.library_env())
                self._open_keys()
                self.recorder.backfill(self._event_id_of)  # type: ignore[attr-defined]
                break
            except PersistenceError as exc:
                # Two processes creating the tables at once can collide in PostgreSQL's
                # catalogue ("tuple concurrently updated"); the second try finds them made.
                # A store that cannot be reached is told at once.
                if attempt == 4 or storage_fault(exc, doing="") is not None:
                    raise
                time.sleep(0.1 * (attempt + 1))

    # -- per-patient keys and erasure (domain/ledger/patient_keys.py) ---------------------------

    keys: PatientKeys | None = None

    def _open_keys(self) -> None:
        """With a master key, new events are sealed under per-patient data keys."""
        if self.config.cipher_key and self.keys is None:
            self.keys = PatientKeys(open_db(self.config, side="ledger"), self.config.cipher_key)
            cast(LedgerMapper, self.mapper).keys = self.keys

    def is_erased(self, patient_id: str) -> bool:
        """Was this patient erased (its data key destroyed)? Answered from memory once known."""
        return self.keys is not None and self.keys.is_erased(patient_id)

    def refuse_erased(self, patient_id: str) -> None:
        if self.is_erased(patient_id):
            erasure = self.keys.erasure(patient_id) if self.keys else None
            why = (
                f" on {erasure.erased_at} by {erasure.erased_by}: {erasure.reason}"
                if erasure
                else ""
            )
            raise Gone(
                f"patient {patient_id} was erased{why}; its clinical content no longer exists",
                field="patient_id",
                rule="erased",
            )

    def erase(self, patient_id: str, *, actor: str, reason: str) -> Erasure:
        """Destroy the patient's data key: its payloads can never be decrypted again."""
        if self.keys is None:
            raise ValidationFailed(
                "erasure needs the master key: set ONCOLEDGER_CIPHER_KEY (a store without one "
                "keeps payloads in clear, and clear data cannot be crypto-shredded)",
                field="ONCOLEDGER_CIPHER_KEY",
                rule="cipher_key",
            )
        if not reason.strip():
            raise ValidationFailed("an erasure needs a reason", field="reason", rule="required")
        stored = self.recorder.select_events(patient_id)
        if not stored:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        if not all(is_sealed(bytes(e.state)) for e in stored):
            raise RuleViolation(
                f"patient {patient_id} has events recorded before per-patient keys (in clear or "
                "under the master key itself): destroying a key would not erase them, so "
                "nothing was erased",
                field="patient_id",
                rule="erasable",
            )
        with self._streams.lock(patient_id):
            erasure = self.keys.erase(patient_id, actor=actor, reason=reason)
            self._streams.take(patient_id)
        return erasure

    def erasures(self) -> list[Erasure]:
        return self.keys.erasures() if self.keys else []

    def _notify(self, recordings: list[Recording[str]]) -> None:
        self.on_saved()

    def construct_mapper(self) -> LedgerMapper:
        return LedgerMapper(cipher=self.factory.cipher(), compressor=self.factory.compressor())

    def _record(self, processing_event: ProcessingEvent[str]) -> list[Recording[str]]:
        """Every save hands the recorder the ids it stores, for the ledger-wide index."""
        processing_event.saved_kwargs[EVENT_IDS] = [
            (str(cast(Recorded, e).entry.event_id), str(e.originator_id))
            for e in processing_event.events
        ]
        return super()._record(processing_event)

    def _event_id_of(self, stored: StoredEvent) -> str | None:
        try:
            return msgspec.json.decode(self.plaintext(stored), type=_StoredId).event_id
        except Exception:  # unreadable (tampered, another key): the index skips it, logged
            return None

    # -- reading --------------------------------------------------------------------------------

    def load(self, patient_id: str, *, upto: int | None = None) -> Patient:
        """The patient as stored now (or up to version `upto`): a copy the caller may keep."""
        if upto is None:
            return self._current(patient_id).copy()
        self.refuse_erased(patient_id)
        patient = Patient(patient_id)
        for entry in self._entries(patient_id, upto=upto):
            patient.apply(entry)
        if not patient.registered:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        return patient

    def _current(self, patient_id: str) -> Patient:
        """The cached patient brought up to date with what was stored since (any process)."""
        self.refuse_erased(patient_id)
        patient = self._streams.take(patient_id) or Patient(patient_id)
        for entry in self._entries(patient_id, after=patient.version):
            patient.apply(entry)
        if not patient.registered:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        self._streams.put(patient)
        return patient

    def _entries(
        self, patient_id: str, *, upto: int | None = None, after: int | None = None
    ) -> Iterator[ev.AnyEvent]:
        for event in self.events.get(patient_id, gt=after or None, lte=upto):
            yield cast(Recorded, event).entry

    def version(self, patient_id: str) -> int:
        """The stream's version (0 when the patient is not registered)."""
        last = self.recorder.select_events(patient_id, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def exists(self, patient_id: str) -> bool:
        return bool(self.recorder.select_events(patient_id, limit=1))

    def history(
        self, patient_id: str, *, as_of: datetime | None = None, upto: int | None = None
    ) -> list[ev.AnyEvent]:
        """Every event of a patient in stream order, as known at `as_of` / up to `upto`."""
        if upto is not None and not 0 <= upto < 2**63:
            raise ValidationFailed(
                "`upto` must be a version from 0 to 2^63-1", field="upto", rule="range"
            )
        entries = list(self._current(patient_id).entries)
        if upto is not None:
            entries = entries[:upto]
        if not entries:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        if as_of is not None:
            as_of = assume_utc(as_of)
            entries = [e for e in entries if e.recorded_at and e.recorded_at <= as_of]
        return entries

    def stored_events(self, patient_id: str) -> Sequence[StoredEvent]:
        return self.recorder.select_events(patient_id)

    def plaintext(self, stored: StoredEvent) -> bytes:
        mapper: LedgerMapper = self.mapper  # type: ignore[assignment]
        return mapper.plaintext(stored)

    def scan(
        self, patient_id: str | None = None
    ) -> Iterator[tuple[str, int, bytes | dict[str, object]]]:
        """Stored events as (patient_id, version, plaintext JSON), in recording order."""
        if patient_id is not None:
            for stored in self.recorder.select_events(patient_id):
                yield patient_id, stored.originator_version, self._plaintext_or_empty(stored)
            return
        start = 1
        while True:
            batch = self.recorder.select_notifications(start, 1000)
            if not batch:
                return
            for n in batch:
                yield str(n.originator_id), n.originator_version, self._plaintext_or_empty(n)
            start = batch[-1].id + 1

    def _plaintext_or_empty(self, stored: StoredEvent) -> bytes | dict[str, object]:
        try:
            return self.plaintext(stored)
        except Gone:
            # An erased patient: only the clear envelope remains, and the chain is checked
            # from its stored hashes.
            return {**envelope_of(bytes(stored.state)), ERASED: True}
        except Exception:  # a tampered ciphertext or another key: the checker reports it
            return UNDECRYPTABLE

    def verify(self, patient_id: str | None = None) -> ChainReport:
        """Recompute every chain (or one patient's) from the stored bytes."""
        if patient_id is not None and not self.exists(patient_id):
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        return verify_entries(self.scan(patient_id))

    def digest(self) -> Digest:
        """SPEC §6: one SHA-256 over every stream head, in patient-id order."""
        heads: dict[str, tuple[int, str]] = {}
        for patient_id, version, state in self.scan():
            try:
                data = state if isinstance(state, dict) else msgspec.json.decode(state)
                head = str(data.get("hash"))
            except (msgspec.DecodeError, AttributeError):
                head = "unreadable"
            heads[patient_id] = (version, head)
        return digest_heads((pid, v, h) for pid, (v, h) in heads.items())

    # -- writing --------------------------------------------------------------------------------

    def register(
        self, patient_id: str, entry: ev.PatientRegistered, *, actor: str, source: str
    ) -> Receipt:
        return self.append(patient_id, [entry], actor=actor, source=source)[0]

    def append(
        self,
        patient_id: str,
        entries: Sequence[ev.AnyEvent],
        *,
        actor: str,
        source: str,
        expected_version: int | None = None,
    ) -> list[Receipt]:
        """Record `entries` in one transaction: all of them or none."""
        if not entries:
            raise ValidationFailed("nothing to append: the batch is empty", field="events")
        _check_ids_unique_in_batch(entries)
        _check_storable(entries, actor)
        self.refuse_erased(patient_id)
        with self._streams.lock(patient_id):
            for attempt in range(MAX_ATTEMPTS):
                patient = self._streams.take(patient_id) or Patient(patient_id)
                for entry in self._entries(patient_id, after=patient.version):
                    patient.apply(entry)
                loaded = patient.version
                if (
                    expected_version is not None
                    and loaded != expected_version
                    and not all(e.event_id in patient.position for e in entries)
                ):
                    # Stale, and not a retry of what is stored: the precondition answers first.
                    self._streams.put(patient)
                    raise StaleVersion(
                        f"patient {patient_id} is at version {loaded}, "
                        f"not the expected {expected_version}",
                        field="If-Match",
                        rule="expected_version",
                    )
                now = datetime.now(UTC)  # one transaction, one transaction time for the batch
                receipts = [
                    _receipt(*patient.record(entry, actor=actor, source=source, now=now))
                    for entry in entries
                ]
                if not any(r.created for r in receipts):
                    # A retry of what is already stored answers as the first time did.
                    self._streams.put(patient)
                    return receipts
                if expected_version is not None and loaded != expected_version:
                    raise StaleVersion(
                        f"patient {patient_id} is at version {loaded}, "
                        f"not the expected {expected_version}",
                        field="If-Match",
                        rule="expected_version",
                    )
                try:
                    self.save(patient)
                except (PersistenceError, OSError) as exc:
                    path = self.config.sqlite_path
                    if storage_fault(exc, doing="", path=path) is not None:
                        # A full disk or a lost store: never run again as if it were contention.
                        return self._settled(patient_id, loaded, receipts, exc)
                    if not isinstance(exc, IntegrityError | OperationalError):
                        raise
                    if isinstance(exc, IntegrityError):
                        self._check_ids_unused_elsewhere(patient_id, receipts)
                    # Another process took these versions: start again from the store.
                    if expected_version is not None and isinstance(exc, IntegrityError):
                        raise StaleVersion(
                            f"patient {patient_id} moved on while this was being recorded",
                            field="If-Match",
                            rule="expected_version",
                        ) from exc
                    time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
                    continue
                self._streams.put(patient)
                return receipts
        raise Conflict(
            f"patient {patient_id} is being written too busily; nothing was recorded, try again",
            field="patient_id",
            rule="write_contention",
        )

    def _settled(
        self, patient_id: str, loaded: int, receipts: list[Receipt], exc: Exception
    ) -> list[Receipt]:
        """A save failed on a storage fault: ask the store whether it committed all the same
        (a commit can fail after the database made it durable). Stored: the receipts stand.
        Not stored: the fault is the answer. Cannot ask: the outcome is unknown."""
        doing = f"recording for patient {patient_id}"
        new = [r.event_id for r in receipts if r.created]
        try:
            stored = self.recorder.select_events(patient_id, gt=loaded, limit=len(new))
            entries = [cast(Recorded, self.mapper.to_domain_event(s)).entry for s in stored]
            found = [entry.event_id for entry in entries]
        except Exception as check:
            fault = storage_fault(
                exc,
                path=self.config.sqlite_path,
                doing=doing,
                outcome="and the store could not be asked afterwards whether the commit happened",
            )
            ids = ", ".join(str(i) for i in new)
            raise OutcomeUnknown(
                f"{fault.message if fault else exc}. The outcome is unknown: sending the same "
                f"event(s) again with event_id {ids} is safe (if they were stored, the retry "
                "stores nothing and answers with their receipt)",
                event_ids=[str(i) for i in new],
                field="event_id",
            ) from check
        if found == new:
            mine = [r.hash for r in receipts if r.created]
            if [entry.hash for entry in entries] == mine:
                return receipts  # this save's own events, durable despite the error
            # The same events, stored by another writer (a retry racing this one): their
            # receipts, as any retry of a stored event_id gets.
            theirs = {entry.event_id: _receipt(entry, False) for entry in entries}
            return [theirs.get(r.event_id, r) if r.created else r for r in receipts]
        fault = storage_fault(
            exc, doing=doing, outcome="nothing was stored", path=self.config.sqlite_path
        )
        raise fault or exc

    def _check_ids_unused_elsewhere(self, patient_id: str, receipts: Sequence[Receipt]) -> None:
        """After a refused save: was it an event id that another stream holds?"""
        new = [str(r.event_id) for r in receipts if r.created]
        for event_id, owner in self.recorder.owners(new).items():  # type: ignore[attr-defined]
            if owner != patient_id:
                raise Conflict(
                    f"event_id {event_id} is already used by another patient's stream; "
                    "nothing was recorded",
                    field="event_id",
                    rule="unique_event_id",
                )


class _StoredId(msgspec.Struct):
    event_id: str | None = None


def _check_storable(entries: Sequence[ev.AnyEvent], actor: str) -> None:
    """Every string of every entry, nested ones included, is one both stores can hold."""
    check_storable({"actor": actor})
    for index, entry in enumerate(entries):
        try:
            suspect = may_hold_unstorable(ev.encode(entry))
        except UnicodeEncodeError:  # an unpaired surrogate has no UTF-8 form
            suspect = True
        if not suspect:
            continue
        try:
            check_storable(ev.to_builtins(entry))  # finds it, naming the field
        except ValidationFailed as exc:
            raise (in_batch(exc, index) if len(entries) > 1 else exc) from None


def _check_ids_unique_in_batch(entries: Sequence[ev.AnyEvent]) -> None:
    seen: set[UUID] = set()
    for entry in entries:
        if entry.event_id is None:
            continue
        if entry.event_id in seen:
            raise ValidationFailed(
                f"event_id {entry.event_id} appears twice in one batch",
                field="event_id",
                rule="unique_event_id",
            )
        seen.add(entry.event_id)


__all__ = ["Ledger", "Receipt", "Recorded", "StoreConfig"]
