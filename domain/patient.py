"""The `Patient` aggregate: one patient's append-only stream of clinical events.

Every rule of SPEC §3 is a `check_*` step that raises before anything is recorded. The state
kept here is only what those rules need: the entries in stream order, which of them are in
force (amended, retracted: `domain.in_force.InForce`, the one place corrections are applied)
and the head of the hash chain.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID, uuid4

import msgspec

from domain import events as ev
from domain import stream_rules
from domain.dates import InvalidPartialDate, PartialDate
from domain.errors import Conflict, NotFound, RuleViolation, ValidationFailed, different_body
from domain.in_force import InForce, State, Status
from domain.staging import (
    PATHOLOGICAL_ADENOCARCINOMA,
    PATHOLOGICAL_SCC,
    stage_group,
    staging_table,
)
from domain.stream_entries import Entries

GENESIS_HASH = "0" * 64
# The event types whose bodies in force a patient keeps by type, for the rules that need them.
TRACKED: tuple[type[ev.ClinicalEvent], ...] = (ev.Death, ev.DiagnosisConfirmed)


def chain_hash(canonical: bytes, prev_hash: str) -> str:
    """SPEC §6: SHA-256 over the canonical encoding (without `hash`) followed by `prev_hash`."""
    return hashlib.sha256(canonical + prev_hash.encode("ascii")).hexdigest()


def parse_date(text: str, field: str) -> PartialDate:
    try:
        return PartialDate.parse(text)
    except InvalidPartialDate as exc:
        raise ValidationFailed(f"`{field}`: {exc}", field=field, rule="calendar_date") from exc


def _in_future(field: str, value: object) -> RuleViolation:
    return RuleViolation(f"`{field}` {value} is in the future", field=field, rule="not_in_future")


@dataclass(frozen=True)
class Recorded:
    """An event as the library stores it: the stream position and the flat ledger entry."""

    originator_id: str
    originator_version: int
    timestamp: datetime
    entry: ev.AnyEvent

    TOPIC: ClassVar[str] = "oncoledger:Patient.Recorded"
    class_version: ClassVar[int] = 1

    def mutate(self, patient: Patient | None) -> Patient:
        if patient is None:
            patient = Patient(self.originator_id)
        patient.apply(self.entry)
        return patient


def _event_class(name: str) -> type[Recorded]:
    cls = type(name, (Recorded,), {"TOPIC": f"oncoledger:Patient.{name}", "__qualname__": name})
    return dataclass(frozen=True)(cls)


class Patient:
    """A patient's stream. Construct empty, then `register()` or replay `Recorded` events."""

    TOPIC: ClassVar[str] = "oncoledger:Patient"

    def __init__(self, patient_id: str) -> None:
        self.id = patient_id
        self.version = 0
        self.head_hash = GENESIS_HASH
        self.entries = Entries()  # decoded, or (restored) decoded as they are read
        self.position: dict[UUID, int] = {}
        # The clinical events in force (corrections applied: `domain.in_force`, the one fold),
        # with the deaths and diagnoses kept by type as events are applied, so that a rule
        # costs the same at 10 and at 1,000 events.
        self.in_force = InForce(track=TRACKED)
        self._pending: list[Recorded] = []

    @classmethod
    def restored(cls, patient_id: str, entries: Entries, state: State) -> Patient:
        """The patient that applying `entries` (its stream from version 1, one chain) gives,
        from what its `in_force.state()` was then (`domain.ledger.snapshots`): nothing is
        applied again, and an entry is decoded only when it is read. A state that does not
        fit the entries raises (ValueError, LookupError)."""
        patient = cls(patient_id)
        ids = entries.ids
        position: dict[UUID, int] = dict(zip(ids, range(len(ids)), strict=True))
        last = entries[-1] if ids else None
        if len(position) != len(ids) or (
            last is not None and (last.version != len(ids) or not last.hash)
        ):
            raise ValueError(f"the entries of patient {patient_id} are not one sealed stream")
        if last is not None and last.hash:
            patient.version, patient.head_hash = len(ids), last.hash
        patient.entries, patient.position = entries, position
        patient.in_force = InForce.restored(entries, state, TRACKED)
        return patient

    # -- replay ---------------------------------------------------------------------------

    def apply(self, entry: ev.AnyEvent) -> None:
        assert entry.event_id is not None and entry.version is not None and entry.hash
        self.entries.append(entry)
        self.position[entry.event_id] = len(self.entries) - 1
        self.version = entry.version
        self.head_hash = entry.hash
        self.in_force.apply(entry)

    @property
    def effective(self) -> Mapping[UUID, ev.ClinicalEvent]:
        """The bodies in force (the latest replacement of each, retracted ones left out), in
        stream order."""
        return self.in_force.bodies()

    @property
    def status(self) -> Mapping[UUID, Status]:
        return self.in_force.statuses()

    @property
    def deaths(self) -> Mapping[UUID, ev.Death]:
        return self.in_force.tracked(ev.Death)

    @property
    def diagnoses(self) -> Mapping[UUID, ev.DiagnosisConfirmed]:
        return self.in_force.tracked(ev.DiagnosisConfirmed)

    def copy(self) -> Patient:
        """A copy with its own containers (the entries themselves are immutable)."""
        twin = Patient(self.id)
        twin.version, twin.head_hash = self.version, self.head_hash
        twin.entries = self.entries.copy()
        twin.position = dict(self.position)
        twin.in_force = self.in_force.copy()
        return twin

    def collect_events(self) -> list[Recorded]:
        pending, self._pending = self._pending, []
        return pending

    # -- queries the rules need ----------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.version > 0

    @property
    def birth_year(self) -> int | None:
        first = self.entries[0] if self.entries else None
        if first is None or first.event_id is None:
            return None
        reg = self.effective.get(first.event_id)
        return reg.birth_year if isinstance(reg, ev.PatientRegistered) else None

    def entry(self, event_id: UUID) -> ev.AnyEvent | None:
        index = self.position.get(event_id)
        return None if index is None else self.entries[index]

    def histology_before(self, version: int) -> str | None:
        """The histology of the latest diagnosis in force recorded before `version`."""
        diagnosis = self.diagnosis_before(version)
        return diagnosis.histology if diagnosis is not None else None

    def diagnosis_before(self, version: int) -> ev.DiagnosisConfirmed | None:
        """The latest diagnosis in force recorded before `version` (its histology, grade and
        location pick the AJCC table and row)."""
        diagnosis = None
        for event_id, body in self.diagnoses.items():
            if self._version_of(event_id) < version:
                diagnosis = body
        return diagnosis

    def _version_of(self, event_id: UUID) -> int:
        index = self.position.get(event_id)
        return index + 1 if index is not None else self.version + 1

    # -- commands --------------------------------------------------------------------------

    def record(
        self, entry: ev.AnyEvent, *, actor: str, source: str, now: datetime | None = None
    ) -> tuple[ev.AnyEvent, bool]:
        """Check `entry` against every rule and record it.

        Returns the stored entry and whether it is new: a re-sent `event_id` with the same body
        returns the original entry and records nothing.
        """
        now = now or datetime.now(UTC)
        self.check_addressed_here(entry)
        self.check_no_server_fields(entry)
        entry = self.normalise(entry)
        if entry.event_id is not None and entry.event_id in self.position:
            original = self.entries[self.position[entry.event_id]]
            if ev.client_body_bytes(original) != ev.client_body_bytes(entry):
                raise different_body(entry.event_id, self.id)
            return original, False
        if isinstance(entry, ev.PatientRegistered):
            if self.registered:
                raise Conflict(
                    f"patient {self.id} is already registered",
                    field="patient_id",
                    rule="register_once",
                )
        elif not self.registered:
            raise NotFound(f"patient {self.id} is not registered", field="patient_id")
        self.check_dates(entry, today=now.date())
        self.check_correction(entry, today=now.date())
        self.check_stream_invariants(entry)
        stored = self._seal(entry, actor=actor, source=source, now=now)
        event = _EVENT_CLASSES[stored.type](
            originator_id=self.id,
            originator_version=cast(int, stored.version),
            timestamp=now,
            entry=stored,
        )
        event.mutate(self)
        self._pending.append(event)
        return stored, True

    def normalise(self, entry: ev.AnyEvent) -> ev.AnyEvent:
        """Fill what the server decides: the patient id and a computed stage group."""
        changes: dict[str, Any] = {"patient_id": self.id}
        if isinstance(entry, ev.Staging):
            changes["stage_group"] = self.check_stage_group(entry, self.version + 1)
        if isinstance(entry, ev.EventAmended) and isinstance(entry.replacement, ev.Staging):
            target = self.entry(entry.target_event_id)
            at = target.version if target is not None and target.version else self.version + 1
            group = self.check_stage_group(entry.replacement, at, field="replacement.stage_group")
            replacement = msgspec.structs.replace(entry.replacement, stage_group=group)
            changes["replacement"] = replacement
        return msgspec.structs.replace(entry, **changes)

    def _seal(self, entry: ev.AnyEvent, *, actor: str, source: str, now: datetime) -> ev.AnyEvent:
        sealed = msgspec.structs.replace(
            entry,
            event_id=entry.event_id or uuid4(),
            version=self.version + 1,
            recorded_at=now,
            recorded_by=actor,
            source=source,
            prev_hash=self.head_hash,
            hash=None,
            salt=secrets.token_hex(16),
        )
        digest = chain_hash(ev.canonical_bytes(sealed), self.head_hash)
        return msgspec.structs.replace(sealed, hash=digest)

    # -- rules -------------------------------------------------------------------------------

    def check_addressed_here(self, entry: ev.AnyEvent) -> None:
        if entry.patient_id is not None and entry.patient_id != self.id:
            raise ValidationFailed(
                f"`patient_id` {entry.patient_id!r} does not match the stream {self.id!r}",
                field="patient_id",
                rule="same_stream",
            )

    @staticmethod
    def check_no_server_fields(entry: ev.AnyEvent) -> None:
        bodies: list[tuple[str, ev.Event]] = [("", entry)]
        if isinstance(entry, ev.EventAmended):
            bodies.append(("replacement.", entry.replacement))
        for prefix, body in bodies:
            for name in ev.SERVER_FIELDS:
                if getattr(body, name) is not None:
                    raise ValidationFailed(
                        f"`{prefix}{name}` is assigned by the server and cannot be sent",
                        field=prefix + name,
                        rule="server_assigned",
                    )
        if isinstance(entry, ev.EventAmended):
            for name in ("event_id", "patient_id"):
                if getattr(entry.replacement, name) is not None:
                    raise ValidationFailed(
                        f"`replacement.{name}` must be left out: the replacement takes the "
                        "target's identity",
                        field=f"replacement.{name}",
                        rule="replacement_identity",
                    )

    def check_dates(self, entry: ev.Event, *, today: date, prefix: str = "") -> None:
        occurred = parse_date(entry.occurred, prefix + "occurred")
        if occurred.earliest > today:
            raise _in_future(prefix + "occurred", entry.occurred)
        birth_year = self.birth_year
        if isinstance(entry, ev.PatientRegistered):
            birth_year = entry.birth_year
            if birth_year is not None and birth_year > today.year:
                raise _in_future(prefix + "birth_year", birth_year)
        if birth_year is not None and occurred.year < birth_year:
            raise RuleViolation(
                f"`{prefix}occurred` {entry.occurred} is before the birth year {birth_year}",
                field=prefix + "occurred",
                rule="not_before_birth",
            )
        if isinstance(entry, ev.Chemotherapy) and entry.ended is not None:
            ended = parse_date(entry.ended, prefix + "ended")
            if ended.earliest > today:
                raise _in_future(prefix + "ended", entry.ended)
            if occurred.is_certainly_after(ended):
                raise RuleViolation(
                    f"`{prefix}ended` {entry.ended} is before `occurred` {entry.occurred}",
                    field=prefix + "ended",
                    rule="ended_after_start",
                )
        if isinstance(entry, ev.Imaging):
            self.check_lesions(entry, prefix)
        if isinstance(entry, ev.EventAmended):
            self.check_dates(entry.replacement, today=today, prefix="replacement.")

    @staticmethod
    def check_lesions(entry: ev.Imaging, prefix: str) -> None:
        seen: set[str] = set()
        for i, lesion in enumerate(entry.lesions):
            field = f"{prefix}lesions[{i}]"
            if lesion.lesion_id in seen:
                raise ValidationFailed(
                    f"`{field}.lesion_id` {lesion.lesion_id!r} appears twice in one imaging event",
                    field=f"{field}.lesion_id",
                    rule="unique_lesion_id",
                )
            seen.add(lesion.lesion_id)
            dims = lesion.dimensions_mm
            if any(a < b for a, b in itertools.pairwise(dims)):
                raise ValidationFailed(
                    f"`{field}.dimensions_mm` must list the longest diameter first",
                    field=f"{field}.dimensions_mm",
                    rule="longest_first",
                )

    def check_stage_group(
        self, staging: ev.Staging, version: int, field: str = "stage_group"
    ) -> str:
        prefix = field.removesuffix("stage_group")
        if staging.t == "Tis" and staging.n != "N0":
            raise RuleViolation(
                f"`{prefix}n` {staging.n} is invalid with Tis: carcinoma in situ is N0",
                field=prefix + "n",
                rule="tis_requires_n0",
            )
        diagnosis = self.diagnosis_before(version)
        if diagnosis is None:
            raise RuleViolation(
                "a staging needs a diagnosis_confirmed earlier in the stream "
                "(its histology picks the AJCC table)",
                field=prefix + "type",
                rule="staging_needs_diagnosis",
            )
        group = stage_group(
            context=staging.context,
            histology=diagnosis.histology,
            t=staging.t,
            n=staging.n,
            m=staging.m,
            grade=diagnosis.grade,
            location=diagnosis.tumor_location,
        )
        if staging.stage_group is not None and staging.stage_group != group:
            table = staging_table(staging.context, diagnosis.histology)
            basis = f"{staging.context}{staging.t}{staging.n}{staging.m}"
            if table in (PATHOLOGICAL_SCC, PATHOLOGICAL_ADENOCARCINOMA):
                basis += f", {diagnosis.grade}"
            if table == PATHOLOGICAL_SCC:
                basis += f", location {diagnosis.tumor_location}"
            raise RuleViolation(
                f"`{field}` {staging.stage_group!r} disagrees with "
                f"{table or 'AJCC 8 (no table for ' + diagnosis.histology + ')'} "
                f"({basis}: {group})",
                field=field,
                rule="stage_group_agrees",
            )
        return group

    def check_correction(self, entry: ev.AnyEvent, *, today: date) -> None:
        stream_rules.check_correction(self, entry)

    def check_stream_invariants(self, new: ev.AnyEvent) -> None:
        stream_rules.check_stream_invariants(self, new)

    def would_stand(self, new: ev.AnyEvent) -> Iterator[ev.ClinicalEvent]:
        """The events in force if `new` were recorded, in stream order (nothing is copied)."""
        return stream_rules.would_stand(self, new)


# One stored event class per entry of the registry in `domain.events`, keyed by tag.
_EVENT_CLASSES: dict[str, type[Recorded]] = {
    tag: _event_class(name) for tag, name in ev.STORED_NAMES.items()
}
EVENT_CLASS_BY_TOPIC: dict[str, type[Recorded]] = {c.TOPIC: c for c in _EVENT_CLASSES.values()}
