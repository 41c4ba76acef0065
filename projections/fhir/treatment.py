"""Treatments as mCODE procedures and medication requests: chemotherapy, radiotherapy,
surgery, ablation and declined therapy."""

from __future__ import annotations

from typing import Any

from domain import events as ev
from projections.effective import Item
from projections.fhir import codes as fc
from projections.fhir.bundle import Bundle, Resource, quantity, ref, with_note


def _intent(intent: str) -> list[dict[str, Any]]:
    code = fc.INTENT.get(intent)
    if code is None:
        return []
    return [{"url": fc.EXT["intent"], "valueCodeableConcept": fc.concept(code)}]


def _intent_note(intent: str) -> str | None:
    return f"Treatment timing: {intent}." if intent in ("neoadjuvant", "adjuvant") else None


def map_chemotherapy(b: Bundle, item: Item, body: ev.Chemotherapy) -> None:
    period = {"start": body.occurred, **({"end": body.ended} if body.ended else {})}
    for index, agent in enumerate(body.agents or [body.regimen]):
        resource: Resource = {
            "resourceType": "MedicationAdministration",
            "extension": _intent(body.intent),
            # Agents are free text in the ledger: coding them in RxNorm needs a terminology
            # service, so the text is sent as it was recorded.
            "status": "completed",
            "medicationCodeableConcept": fc.concept(text=agent),
            "subject": b.subject(),
            "effectivePeriod": period,
            **b.reason(),
            "dosage": {"text": f"Regimen {body.regimen}: {body.courses} course(s)"},
        }
        with_note(resource, item, _intent_note(body.intent))
        b.add(item, resource, "medication_administration", f"agent/{index}")


def map_radiotherapy(b: Bundle, item: Item, body: ev.Radiotherapy) -> None:
    volume: Resource = {
        "resourceType": "BodyStructure",
        "description": body.target,
        "patient": b.subject(),
    }
    volume = b.add(item, volume, "radiotherapy_volume", "volume")
    dose = {
        "url": fc.EXT["dose_to_volume"],
        "extension": [
            {"url": "volume", "valueReference": ref(volume)},
            # The profile fixes the unit to cGy.
            {
                "url": "totalDoseDelivered",
                "valueQuantity": quantity(round(body.dose_gy * 100, 6), "cGy"),
            },
            {"url": "fractionsDelivered", "valueUnsignedInt": body.fractions},
        ],
    }
    resource: Resource = {
        "resourceType": "Procedure",
        "extension": [*_intent(body.intent), dose],
        "status": "completed",
        "code": fc.concept(fc.RADIOTHERAPY_COURSE),
        "subject": b.subject(),
        "performedPeriod": {"start": body.occurred},
        **b.reason(),
        "bodySite": [fc.concept(text=body.target)],
    }
    b.add(item, with_note(resource, item, _intent_note(body.intent)), "radiotherapy", "course")


def map_surgical(b: Bundle, item: Item, code_text: str, intent: str, site: str | None) -> None:
    resource: Resource = {
        "resourceType": "Procedure",
        "extension": _intent(intent),
        "status": "completed",
        # No confirmed code for these free-text procedures (mCODE has no ablation codes and
        # SNOMED's are site- and approach-specific): the text is sent as recorded.
        "code": fc.concept(text=code_text),
        "subject": b.subject(),
        "performedDateTime": item.body.occurred,
        **b.reason(),
        **({"bodySite": [fc.concept(text=site)]} if site else {}),
    }
    b.add(item, with_note(resource, item, _intent_note(intent)), "surgical_procedure", "surgery")


def map_ablation(b: Bundle, item: Item, body: ev.Ablation) -> None:
    target = f" of lesion {body.target_lesion_id}" if body.target_lesion_id else ""
    map_surgical(b, item, f"{body.modality.capitalize()} ablation{target}", "unknown", body.site)


_DECLINED_TEXT = {
    "all_antitumor": "All anti-tumor therapy",
    "chemotherapy": "Chemotherapy",
    "radiotherapy": "Radiotherapy",
    "surgery": "Surgery",
    "other": "Therapy",
}


def map_declined(b: Bundle, item: Item, body: ev.TherapyDeclined) -> None:
    resource: Resource = {
        "resourceType": "Procedure",
        "status": "not-done",
        "statusReason": fc.concept(fc.REFUSAL, text=body.reason or "Declined by the patient"),
        "code": fc.concept(text=_DECLINED_TEXT[body.scope]),
        "subject": b.subject(),
        # When the refusal was recorded as happening: a not-done procedure has no other date.
        "performedDateTime": body.occurred,
        **b.reason(),
    }
    with_note(resource, item, f"Declined on {body.occurred}.")
    b.add(item, resource, "procedure", "declined")
