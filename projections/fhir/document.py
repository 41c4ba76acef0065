"""One patient's record as a FHIR R4 (4.0.1) Bundle of type `collection`: every mapper applied
in order, one Provenance per correction, the export service call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid5

from domain import events as ev
from domain.errors import NotFound
from projections.effective import Item, all_items
from projections.fhir import codes as fc
from projections.fhir.bundle import Bundle, Resource, instant, ref
from projections.fhir.disease import (
    Tumors,
    map_biopsy,
    map_condition,
    map_disease_status,
    map_imaging,
    map_patient,
    map_staging,
)
from projections.fhir.observations import map_ctc, map_death_cause, map_follow_up
from projections.fhir.treatment import (
    map_ablation,
    map_chemotherapy,
    map_declined,
    map_radiotherapy,
    map_surgical,
)

if TYPE_CHECKING:
    from projections.root import OncoLedger

# -- corrections --------------------------------------------------------------------------------


def _provenance(b: Bundle, item: Item) -> None:
    """One Provenance per correction of an event, targeting every resource made from it."""
    targets = b.by_event.get(item.event_id, [])
    if not targets:
        return
    versions = 1
    for correction in item.corrections:
        versions += 1
        removal = correction.kind == "retracted"
        resource: Resource = {
            "resourceType": "Provenance",
            "id": str(uuid5(correction.event_id, "provenance")),
            "meta": {"versionId": "1", "source": f"urn:uuid:{correction.event_id}"},
            "target": [ref(t) for t in targets],
            "recorded": instant(correction.recorded_at) or instant(datetime.now(UTC)),
            "reason": [fc.concept(text=correction.reason)],
            "activity": fc.concept(
                fc.coding(fc.DATA_OPERATION, "NULLIFY", "nullify")
                if removal
                else fc.coding(fc.DATA_OPERATION, "UPDATE", "revise"),
                text=f"{correction.kind} by ledger event {correction.event_id} "
                f"(resource version {versions})",
            ),
            "agent": [
                {
                    "type": fc.concept(fc.coding(fc.PROVENANCE_AGENT, "author", "Author")),
                    "who": {"display": correction.recorded_by or "unknown"},
                }
            ],
            "entity": [
                {
                    "role": "removal" if removal else "revision",
                    "what": {
                        "identifier": {"system": fc.EVENT_ID_SYSTEM, "value": str(item.event_id)},
                        "display": f"ledger event {item.event_id}, version {versions - 1} "
                        "of the resources made from it",
                    },
                }
            ],
        }
        b.entries.append(resource)


# -- the bundle ---------------------------------------------------------------------------------

_Mapper = Callable[[Bundle, Item, Any], None]
_MAPPERS: dict[type[ev.Event], _Mapper] = {
    ev.Biopsy: map_biopsy,
    ev.Staging: map_staging,
    ev.Chemotherapy: map_chemotherapy,
    ev.Radiotherapy: map_radiotherapy,
    ev.Ablation: map_ablation,
    ev.TherapyDeclined: map_declined,
    ev.CtcCount: map_ctc,
    ev.Death: map_death_cause,
    ev.FollowUp: map_follow_up,
}


def fhir_bundle(patient_id: str, history: list[ev.AnyEvent]) -> Resource:
    """The FHIR R4 collection Bundle of one patient's history (as given: now, or as of then)."""
    items = all_items(history)
    registration = next(
        (i for i in items if isinstance(i.body, ev.PatientRegistered) and i.status != "retracted"),
        None,
    ) or next((i for i in items if isinstance(i.body, ev.PatientRegistered)), None)
    if registration is None:
        raise NotFound(
            f"patient {patient_id} has no registration in the history asked for",
            field="patient_id",
        )
    assert isinstance(registration.body, ev.PatientRegistered)
    death = next(
        (i.body for i in items if isinstance(i.body, ev.Death) and i.status != "retracted"), None
    )
    b = Bundle(patient_id)
    map_patient(b, registration, registration.body, death if isinstance(death, ev.Death) else None)
    site = registration.body.primary_site
    # Conditions first: every other resource refers to the primary cancer condition.
    for item in items:
        if isinstance(item.body, ev.DiagnosisConfirmed):
            map_condition(b, item, item.body, site)
    tumors = Tumors(b)
    # A lesion's Tumor comes from its first mention in force (a retracted one only if none is).
    for item in sorted(items, key=lambda i: i.status == "retracted"):
        if isinstance(item.body, ev.Imaging):
            for lesion in item.body.lesions:
                tumors.get(item, lesion)
    for item in items:
        body = item.body
        if isinstance(body, ev.Imaging):
            map_imaging(b, tumors, item, body)
        elif isinstance(body, ev.Surgery):
            map_surgical(b, item, body.procedure, body.intent, None)
        else:
            mapper = _MAPPERS.get(ev.event_class(body))
            if mapper is not None:
                mapper(b, item, body)
    map_disease_status(b, {i.event_id: i for i in items}, history)
    for item in items:
        if item.corrections:
            _provenance(b, item)
    recorded = [e.recorded_at for e in history if e.recorded_at is not None]
    bundle: Resource = {
        "resourceType": "Bundle",
        "id": str(uuid5(registration.event_id, f"bundle/{len(history)}")),
        "meta": {"profile": [fc.PROFILE["bundle"]]},
        "identifier": {"system": fc.PATIENT_ID_SYSTEM, "value": patient_id},
        "type": "collection",
        "timestamp": instant(max(recorded)) if recorded else instant(datetime.now(UTC)),
        "entry": [
            {"fullUrl": f"urn:uuid:{resource['id']}", "resource": _prune(resource)}
            for resource in b.entries
        ],
    }
    return bundle


def _prune(value: Any) -> Any:
    """FHIR forbids empty arrays and objects: drop them (an extension list left empty)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [v for v in (_prune(x) for x in value) if v not in ({}, [], None)]
    return value


def export_fhir(
    ledger: OncoLedger,
    patient_id: str,
    *,
    as_of: datetime | None = None,
    upto: int | None = None,
) -> Resource:
    """The service call behind `oncoledger fhir export` and `GET .../fhir`: the patient's Bundle
    now, or as known at `as_of` / up to stream version `upto` (NotFound if unregistered)."""
    history = ledger.history(patient_id, as_of=as_of, upto=upto)
    if not history and as_of is not None:
        raise NotFound(
            f"patient {patient_id} was not yet registered as of {instant(as_of)}",
            field="as_of",
            rule="as_of",
        )
    return fhir_bundle(patient_id, history)
