"""`Ledger`, the service layer: the only way events get into a patient's stream.

Each command takes the patient (cached by this process, else read from the store), calls one
aggregate method per event and saves; concurrent saves of this process share one transaction
(domain/ledger/group_commit.py). The store refuses a save whose versions someone else took
first (another process, or a stale cache); the command is then run again on the stream as
stored, so concurrent writers never lose or duplicate an event.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    OperationalError,
    PersistenceError,
    Recording,
    StoredEvent,
)

from domain import events as ev
from domain.errors import (
    Conflict,
    DomainError,
    Gone,
    NotFound,
    RuleViolation,
    StaleVersion,
    ValidationFailed,
)
from domain.instants import assume_utc
from domain.integrity import (
    ChainReport,
    Digest,
    verify_entries,
)
from domain.ledger import chains
from domain.ledger.config import StoreConfig, check_key_format
from domain.ledger.db import open_db
from domain.ledger.event_index import EVENT_IDS
from domain.ledger.group_commit import GroupCommit
from domain.ledger.key_rounds import KeyRounds
from domain.ledger.loop_side import LoopSide
from domain.ledger.mapper import LedgerMapper
from domain.ledger.patient_keys import Erasure, PatientKeys, is_sealed
from domain.ledger.snapshots import Snapshots
from domain.ledger.storage_faults import storage_fault
from domain.ledger.streams import Streams, rolled_back
from domain.ledger.writing import (
    Receipt,
    check_entries_storable,
    check_ids_unique_in_batch,
    check_ids_unused_elsewhere,
    receipt,
    settled,
    stale,
)
from domain.patient import Patient, Recorded

MAX_ATTEMPTS = 200


class Ledger(Application[str]):
    """The clinical event ledger: patients' streams in one event store."""

    name = "OncoLedger"

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig.from_env()
        # Called after every save by this process (the live feed wakes its followers).
        self.on_saved: Callable[[], None] = lambda: None
        self._streams = Streams()
        # The keys an event loop has read again (`append_async`), made on first use.
        self._key_rounds: KeyRounds | None = None
        # The loop's own queue per patient, and the threads for the rests of its appends.
        self._loop_side = LoopSide(self._streams.stripe)
        # Concurrent appends of this process share one transaction (domain/ledger/group_commit).
        self.group_commit = GroupCommit(self._insert, self._is_storage_fault)
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
    # Per-patient snapshots of long streams, sealed under the patient's key (none without keys).
    patient_snapshots: Snapshots | None = None

    def _open_keys(self) -> None:
        """With a master key, new events are sealed under per-patient data keys."""
        if self.config.cipher_key and self.keys is None:
            self.keys = PatientKeys(open_db(self.config, side="ledger"), self.config.cipher_key)
            cast(LedgerMapper, self.mapper).keys = self.keys
            self.patient_snapshots = Snapshots(self.keys)

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
            if self.patient_snapshots is not None:
                self.patient_snapshots.forget(patient_id)
            self._streams.take(patient_id)
        return erasure

    def erasures(self) -> list[Erasure]:
        return self.keys.erasures() if self.keys else []

    def close(self) -> None:
        self.group_commit.close()
        self._loop_side.close()
        if self._key_rounds is not None:
            self._key_rounds.close()
        super().close()

    def _notify(self, recordings: list[Recording[str]]) -> None:
        self.on_saved()

    def construct_mapper(self) -> LedgerMapper:
        return LedgerMapper(cipher=self.factory.cipher(), compressor=self.factory.compressor())

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[str]]:
        """The library's `save()`, without its runtime protocol checks for our own patients
        (`isinstance` against a `typing.Protocol` costs a sizeable part of an append)."""
        patients = [o for o in objs if type(o) is Patient]
        if len(patients) != len(objs) or kwargs:
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[str] = ProcessingEvent()
        for patient in patients:
            processing_event.events.extend(patient.collect_events())
            processing_event.aggregates[patient.id] = patient
        recordings = self._record(processing_event)
        self._notify(recordings)
        return recordings

    def _record(self, processing_event: ProcessingEvent[str]) -> list[Recording[str]]:
        """Every save hands the recorder the ids it stores, for the ledger-wide index, and
        commits with the other appends waiting at that moment (group commit)."""
        events = processing_event.events
        pairs = _event_ids(events)
        if processing_event.tracking is not None or not events:
            processing_event.saved_kwargs[EVENT_IDS] = pairs
            return super()._record(processing_event)
        stored = [self.mapper.to_stored_event(e) for e in events]
        ids = self.group_commit.commit(stored, {EVENT_IDS: pairs})
        if not ids:
            return []
        return [
            Recording(
                e,
                Notification(
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                    id=n,
                ),
            )
            for e, s, n in zip(events, stored, ids, strict=True)
        ]

    def _insert(self, stored: list[StoredEvent], kwargs: dict[str, list[Any]]) -> Any:
        return self.recorder.insert_events(stored, **kwargs)

    def _is_storage_fault(self, exc: BaseException) -> bool:
        return storage_fault(exc, doing="", path=self.config.sqlite_path) is not None

    def _event_id_of(self, stored: StoredEvent) -> str | None:
        try:
            return msgspec.json.decode(self.plaintext(stored), type=_StoredId).event_id
        except Exception:  # unreadable (tampered, another key): the index skips it, logged
            return None

    # -- reading --------------------------------------------------------------------------------

    def load(self, patient_id: str, *, upto: int | None = None) -> Patient:
        """The patient as stored now (or up to version `upto`): a copy the caller may keep."""
        if upto is None:
            return self._current(patient_id, copy=True)
        self.refuse_erased(patient_id)
        patient = Patient(patient_id)
        for entry in self._entries(patient_id, upto=upto):
            patient.apply(entry)
        if not patient.registered:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        return patient

    def _current(self, patient_id: str, *, copy: bool = False) -> Patient:
        """The cached patient brought up to date with what was stored since (any process);
        `copy`: a copy of it, taken while this call alone holds it (a copy shares the items
        until either side changes one, which `Patient.copy` must know before it is shared)."""
        self.refuse_erased(patient_id)
        patient = self._streams.take(patient_id)
        if patient is None:
            patient = self._loaded(patient_id)
        else:
            for entry in self._entries(patient_id, after=patient.version):
                patient.apply(entry)
        if not patient.registered:
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        twin = patient.copy() if copy else patient
        self._streams.put(patient)
        return twin

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
        return chains.scan(self.recorder, self.plaintext, patient_id)

    def verify(self, patient_id: str | None = None) -> ChainReport:
        """Recompute every chain (or one patient's) from the stored bytes."""
        if patient_id is not None and not self.exists(patient_id):
            raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
        return verify_entries(self.scan(patient_id))

    def digest(self) -> Digest:
        """SPEC §6: one SHA-256 over every stream head, in patient-id order."""
        return chains.digest(self.scan())

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
        """Record `entries` in one transaction: all of them or none.

        Optimistic: a patient this process has cached is trusted without asking the store.
        If another process wrote meanwhile, the store's (stream, version) key refuses the save
        and the command runs again on the stream reloaded. No answer is ever given from a
        cache that may be stale: a refusal (a rule, If-Match) is given only once the patient
        was read from the store in this command."""
        command = self._command(patient_id, entries, actor, source, expected_version)
        self.refuse_erased(patient_id)
        with self._streams.lock(patient_id):
            return self._run_command(command)

    async def append_async(
        self,
        patient_id: str,
        entries: Sequence[ev.AnyEvent],
        *,
        actor: str,
        source: str,
        expected_version: int | None = None,
    ) -> list[Receipt]:
        """`append`, for a caller on an event loop (the REST API), with the same semantics.

        The CPU work (the rules, the record, the encryption) runs on the loop and the commit in
        the group committer's thread, with no thread of this append's own waiting. Whatever
        must read the store (a patient not cached, a refusal to be judged on the stream as
        stored, a failed commit) continues in a thread of its own (domain/ledger/loop_side.py),
        as `append` would. Appends on the loop to one patient queue on the loop, one after
        another; the patient's lock is the same one `append` takes: taken without waiting, or
        else (a thread holds it) the whole command runs in a worker thread, which waits for it
        there."""
        command = self._command(patient_id, entries, actor, source, expected_version)
        queue = self._loop_side.lock(patient_id)
        await queue.acquire()
        handed = False
        try:
            lock = self._streams.lock(patient_id)
            loop = asyncio.get_running_loop()
            if not (await self._key_usable(patient_id) and lock.acquire(blocking=False)):
                return await loop.run_in_executor(
                    None,
                    functools.partial(
                        self.append,
                        patient_id,
                        entries,
                        actor=actor,
                        source=source,
                        expected_version=expected_version,
                    ),
                )
            # The command runs to its end whatever happens to the caller (a cancelled request):
            # the locks are released, and the patient put back or dropped, only once it has.
            task = loop.create_task(self._run_command_async(command, lock, queue))
            handed = True
            return await asyncio.shield(task)
        finally:
            if not handed:
                queue.release()

    async def _key_usable(self, patient_id: str) -> bool:
        """Is this patient's key known live, so that the append may run on the loop? Read
        again in a round of many first when it is past its time (no I/O on the loop)."""
        if self.keys is None:
            return True
        if self._key_rounds is None:
            self._key_rounds = KeyRounds(self.keys)
        usable = self._key_rounds.usable(patient_id)
        if usable is False:
            await self._key_rounds.read_again(patient_id)
            usable = self._key_rounds.usable(patient_id)
        return bool(usable)

    def _run_command(self, command: _Command) -> list[Receipt]:
        """Run a command (`_command`), new or stopped at a `yield None`, to its end in this
        thread."""
        try:
            step = command.send(None)
            while True:
                if step is None:
                    step = command.send(None)
                    continue
                try:
                    self.save(step)
                except BaseException as exc:
                    step = command.throw(exc)
                else:
                    step = command.send(None)
        except StopIteration as stop:
            result: list[Receipt] = stop.value
            return result

    async def _run_command_async(
        self, command: _Command, lock: threading.Lock, queue: asyncio.Lock
    ) -> list[Receipt]:
        """Run a command on the event loop while it needs no I/O but its commit (awaited from
        the group committer), the rest of it in a continuation thread; `lock` and `queue` are
        held, and released at the end."""
        try:
            step = next(command)
            while True:
                if step is None:
                    rest = functools.partial(self._run_command, command)
                    return await self._loop_side.continue_in(rest)
                try:
                    await self._save_async(step)
                except Exception as exc:
                    step = command.throw(exc)
                else:
                    step = command.send(None)
        except StopIteration as stop:
            result: list[Receipt] = stop.value
            return result
        finally:
            lock.release()
            queue.release()

    async def _save_async(self, patient: Patient) -> None:
        """`save(patient)` with the commit awaited from the group committer."""
        events = patient.collect_events()
        stored = [self.mapper.to_stored_event(e) for e in events]
        await self.group_commit.submit(stored, {EVENT_IDS: _event_ids(events)})
        self._notify([])

    def _command(
        self,
        patient_id: str,
        entries: Sequence[ev.AnyEvent],
        actor: str,
        source: str,
        expected_version: int | None,
    ) -> _Command:
        """An append, as a generator run under the patient's lock: it yields the patient to
        save (its outcome is sent or thrown back in) and yields None before it reads the store
        (a caller on an event loop moves it to a thread then); it returns the receipts."""
        if not entries:
            raise ValidationFailed("nothing to append: the batch is empty", field="events")
        check_ids_unique_in_batch(entries)
        check_entries_storable(entries, actor)
        return self._steps(patient_id, entries, actor, source, expected_version)

    def _steps(
        self,
        patient_id: str,
        entries: Sequence[ev.AnyEvent],
        actor: str,
        source: str,
        expected_version: int | None,
    ) -> _Command:
        patient = self._streams.take(patient_id)
        fresh = patient is None  # read from the store in this command
        if patient is None:
            yield None
            patient = self._loaded(patient_id)
        for attempt in range(MAX_ATTEMPTS):
            loaded = patient.version
            if (
                expected_version is not None
                and loaded != expected_version
                and not all(e.event_id in patient.position for e in entries)
            ):
                if not fresh:  # the cache may be behind: ask the store before refusing
                    yield None
                    patient, fresh = self._caught_up(patient, at=loaded), True
                    continue
                # Stale, and not a retry of what is stored: the precondition answers first.
                self._streams.put(patient)
                raise stale(patient_id, loaded, expected_version)
            now = datetime.now(UTC)  # one transaction, one transaction time for the batch
            try:
                receipts = [
                    receipt(*patient.record(entry, actor=actor, source=source, now=now))
                    for entry in entries
                ]
            except DomainError:
                if fresh:
                    self._streams.put(rolled_back(patient, at=loaded))
                    raise
                # Refused on a cache that may be stale: judged again on the stream as stored.
                yield None
                patient, fresh = self._caught_up(patient, at=loaded), True
                continue
            if not any(r.created for r in receipts):
                # A retry of what is already stored answers as the first time did.
                self._streams.put(patient)
                return receipts
            if expected_version is not None and loaded != expected_version:
                raise stale(patient_id, loaded, expected_version)
            try:
                yield patient  # saved by the caller
            except (PersistenceError, OSError) as exc:
                yield None
                path = self.config.sqlite_path
                if storage_fault(exc, doing="", path=path) is not None:
                    # A full disk or a lost store: never run again as if it were contention.
                    return settled(self, patient, loaded, receipts, exc)
                if not isinstance(exc, IntegrityError | OperationalError):
                    raise
                if isinstance(exc, IntegrityError):
                    check_ids_unused_elsewhere(self.recorder, patient_id, receipts)
                # Another process took these versions: start again from the store.
                if expected_version is not None and isinstance(exc, IntegrityError) and fresh:
                    raise StaleVersion(
                        f"patient {patient_id} moved on while this was being recorded",
                        field="If-Match",
                        rule="expected_version",
                    ) from exc
                if fresh:
                    time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
                patient, fresh = self._caught_up(patient, at=loaded), True
                continue
            if self.patient_snapshots is not None and self.patient_snapshots.due(patient):
                yield None
                self.patient_snapshots.save(patient)  # while no reader can move it on
            self._streams.put(patient)
            return receipts
        raise Conflict(
            f"patient {patient_id} is being written too busily; nothing was recorded, try again",
            field="patient_id",
            rule="write_contention",
        )

    def _loaded(self, patient_id: str) -> Patient:
        """The patient read from the store (this process had not cached it): from its snapshot
        and the events after it, or from every event (domain/ledger/snapshots.py)."""
        if self.patient_snapshots is not None:
            restored = self.patient_snapshots.load(
                patient_id, lambda after: self._entries(patient_id, after=after)
            )
            if restored is not None:
                return restored
        patient = Patient(patient_id)
        for entry in self._entries(patient_id):
            patient.apply(entry)
        return patient

    def _caught_up(self, patient: Patient, *, at: int) -> Patient:
        """`patient` as it stood at version `at`, with the events stored since by any
        process."""
        patient = rolled_back(patient, at=at)
        for entry in self._entries(patient.id, after=patient.version):
            patient.apply(entry)
        return patient


# An append as run under its patient's lock (`Ledger._command`): it yields a patient to save, or
# None before it reads the store; it returns the receipts.
_Command = Generator[Patient | None, None, list[Receipt]]


def _event_ids(events: Sequence[Any]) -> list[tuple[str, str]]:
    """What a save hands the recorder for the ledger-wide index: each event's id and stream."""
    return [(str(cast(Recorded, e).entry.event_id), str(e.originator_id)) for e in events]


class _StoredId(msgspec.Struct):
    event_id: str | None = None


__all__ = ["Ledger", "Receipt", "Recorded", "StoreConfig", "check_key_format"]
