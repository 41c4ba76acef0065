"""The Bundle being built for one patient, and the small helpers every FHIR mapper uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from projections.effective import Item
from projections.fhir import codes as fc

Resource = dict[str, Any]
# A CTC value per 7.5 mL in UCUM: 7.5 mL written as the integer factor 7500 uL, as UCUM needs.
PER_7_5_ML_UCUM = "{cells}/(7500.uL)"


def instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ref(resource: Resource) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def quantity(value: float, unit: str, code: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": fc.UCUM, "code": code or unit}


def text_or_none(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


@dataclass
class Bundle:
    """Collects the resources of one patient's Bundle, and which event each came from."""

    patient_id: str
    entries: list[Resource] = field(default_factory=list)
    by_event: dict[UUID, list[Resource]] = field(default_factory=dict)
    patient: Resource | None = None
    condition: Resource | None = None

    def add(self, item: Item, resource: Resource, profile: str | None, part: str) -> Resource:
        resource["id"] = str(uuid5(item.event_id, part))
        meta: dict[str, Any] = {
            "versionId": str(1 + len(item.corrections)),
            "source": f"urn:uuid:{item.event_id}",
        }
        updated = item.corrections[-1].recorded_at if item.corrections else None
        updated = updated or item.original.recorded_at
        if updated is not None:
            meta["lastUpdated"] = instant(updated)
        if profile is not None:
            meta["profile"] = [fc.PROFILE[profile]]
        kind, rid = resource.pop("resourceType"), resource.pop("id")
        resource = {"resourceType": kind, "id": rid, "meta": meta, **resource}
        if item.status == "retracted":
            _mark_entered_in_error(resource)
        self.entries.append(resource)
        self.by_event.setdefault(item.event_id, []).append(resource)
        return resource

    def subject(self) -> dict[str, str]:
        assert self.patient is not None
        return ref(self.patient)

    def reason(self) -> dict[str, Any]:
        """`reasonReference` to the primary cancer condition, when there is one."""
        return {"reasonReference": [ref(self.condition)]} if self.condition else {}

    def related_condition(self) -> list[dict[str, Any]]:
        if self.condition is None:
            return []
        return [{"url": fc.EXT["related_condition"], "valueReference": ref(self.condition)}]


def _mark_entered_in_error(resource: Resource) -> None:
    kind = resource["resourceType"]
    if kind == "Condition":
        resource.pop("clinicalStatus", None)  # con-5: none when entered in error
        resource["verificationStatus"] = fc.concept(
            fc.coding(fc.CONDITION_VERIFICATION, "entered-in-error", "Entered in Error")
        )
    elif kind in ("Patient", "BodyStructure"):
        resource["active"] = False
    else:
        resource["status"] = "entered-in-error"


def observation_status(item: Item) -> str:
    return "amended" if item.status == "amended" else "final"


def _note(item: Item, *extra: str | None) -> list[dict[str, str]]:
    texts = [t for t in (*extra, item.body.note) if t]
    if item.body.date_estimated:
        texts.append("Date estimated by the abstractor.")
    return [{"text": t} for t in texts]


def with_note(resource: Resource, item: Item, *extra: str | None) -> Resource:
    notes = _note(item, *extra)
    if notes:
        resource["note"] = notes
    return resource
