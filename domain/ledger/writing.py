"""What an append takes and returns: the checks on a batch before any stream is touched, the
receipt (SPEC §8), and the answer to a save the store refused or failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from domain import events as ev
from domain.errors import Conflict, OutcomeUnknown, StaleVersion, ValidationFailed, different_body
from domain.input_checks import check_storable, in_batch, may_hold_unstorable
from domain.ledger.storage_faults import storage_fault
from domain.patient import Patient, Recorded

if TYPE_CHECKING:
    from domain.ledger.application import Ledger


@dataclass(frozen=True)
class Receipt:
    """What an append returns (SPEC §8): enough for the client to cite the stored event."""

    event_id: UUID
    version: int
    recorded_at: datetime
    hash: str
    created: bool


def receipt(entry: ev.AnyEvent, created: bool) -> Receipt:
    assert entry.event_id and entry.version and entry.recorded_at and entry.hash
    return Receipt(entry.event_id, entry.version, entry.recorded_at, entry.hash, created)


def check_entries_storable(entries: Sequence[ev.AnyEvent], actor: str) -> None:
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


def check_ids_unique_in_batch(entries: Sequence[ev.AnyEvent]) -> None:
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


def settled(
    ledger: Ledger, patient: Patient, loaded: int, receipts: list[Receipt], exc: Exception
) -> list[Receipt]:
    """A save failed on a storage fault: ask the store whether it committed all the same
    (a commit can fail after the database made it durable). Stored: the receipts stand.
    Not stored: the fault is the answer. Cannot ask: the outcome is unknown.

    `patient` holds this command's events, recorded but not saved."""
    patient_id = patient.id
    doing = f"recording for patient {patient_id}"
    new = [r.event_id for r in receipts if r.created]
    try:
        stored = ledger.recorder.select_events(patient_id, gt=loaded, limit=len(new))
        entries = [cast(Recorded, ledger.mapper.to_domain_event(s)).entry for s in stored]
        found = [entry.event_id for entry in entries]
    except Exception as check:
        fault = storage_fault(
            exc,
            path=ledger.config.sqlite_path,
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
        # The same event ids, stored by another writer (a retry racing this one): their
        # receipts, as any retry of a stored event_id gets; but only for the same bodies.
        for entry in entries:
            assert entry.event_id is not None
            own = patient.entries[patient.position[entry.event_id]]
            if ev.client_body_bytes(own) != ev.client_body_bytes(entry):
                raise different_body(entry.event_id, patient_id) from exc
        theirs = {entry.event_id: receipt(entry, False) for entry in entries}
        return [theirs.get(r.event_id, r) if r.created else r for r in receipts]
    fault = storage_fault(
        exc, doing=doing, outcome="nothing was stored", path=ledger.config.sqlite_path
    )
    raise fault or exc


def check_ids_unused_elsewhere(recorder: Any, patient_id: str, receipts: Sequence[Receipt]) -> None:
    """After a refused save: was it an event id that another stream holds?"""
    new = [str(r.event_id) for r in receipts if r.created]
    for event_id, owner in recorder.owners(new).items():
        if owner != patient_id:
            raise Conflict(
                f"event_id {event_id} is already used by another patient's stream; "
                "nothing was recorded",
                field="event_id",
                rule="unique_event_id",
            )


def stale(patient_id: str, version: int, expected: int) -> StaleVersion:
    return StaleVersion(
        f"patient {patient_id} is at version {version}, not the expected {expected}",
        field="If-Match",
        rule="expected_version",
    )
