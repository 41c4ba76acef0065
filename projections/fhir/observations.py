"""Observations without a course of their own: CTC counts, the cause of death, follow-up."""

from __future__ import annotations

from typing import Any

from domain import events as ev
from projections.ctc import per_7_5_ml
from projections.effective import Item
from projections.fhir import codes as fc
from projections.fhir.bundle import (
    PER_7_5_ML_UCUM,
    Bundle,
    Resource,
    instant,
    observation_status,
    quantity,
    with_note,
)


def map_ctc(b: Bundle, item: Item, body: ev.CtcCount) -> None:
    per = round(float(per_7_5_ml(body.count, body.blood_volume_ml)), 2)
    resource: Resource = {
        "resourceType": "Observation",
        "extension": b.related_condition(),
        "status": observation_status(item),
        "category": [fc.CATEGORY_LABORATORY],
        "code": fc.CTC_CODE,
        "subject": b.subject(),
        "effectiveDateTime": body.occurred,
        "valueQuantity": quantity(per, "cells/7.5 mL", PER_7_5_ML_UCUM),
        **({"method": fc.concept(text=body.assay)} if body.assay else {}),
        **({"specimen": {"display": f"Blood sample {body.sample_id}"}} if body.sample_id else {}),
        "component": [
            {
                "code": fc.concept(text="Circulating tumor cells counted in the sample"),
                "valueQuantity": quantity(body.count, "cells", "{cells}"),
            },
            {
                "code": fc.concept(text="Blood volume examined"),
                "valueQuantity": quantity(body.blood_volume_ml, "mL"),
            },
        ],
    }
    b.add(item, with_note(resource, item), "tumor_marker", "ctc")


def _plain_observation(b: Bundle, item: Item, what: str, value: dict[str, Any], part: str) -> None:
    """An event mCODE has no profile for, as a plain Observation with a text-only code."""
    resource: Resource = {
        "resourceType": "Observation",
        "status": observation_status(item),
        "code": fc.concept(text=what),
        "subject": b.subject(),
        "effectiveDateTime": item.body.occurred,
        "valueCodeableConcept": value,
    }
    b.add(item, with_note(resource, item), None, part)


def map_death_cause(b: Bundle, item: Item, body: ev.Death) -> None:
    _plain_observation(b, item, "Cause of death", fc.concept(text=body.cause), "death")
    if item.corrections and b.patient is not None:
        # A corrected death changed the Patient's deceasedDateTime too: a new Patient version,
        # and the correction's Provenance names the Patient as well.
        meta = b.patient["meta"]
        meta["versionId"] = str(int(meta["versionId"]) + len(item.corrections))
        latest = instant(item.corrections[-1].recorded_at)
        if latest is not None and latest > meta.get("lastUpdated", ""):
            meta["lastUpdated"] = latest
        b.by_event[item.event_id].append(b.patient)


def map_follow_up(b: Bundle, item: Item, body: ev.FollowUp) -> None:
    value = (
        fc.concept(fc.LOST_TO_FOLLOW_UP, text="lost to follow-up")
        if body.status == "lost_to_follow_up"
        else fc.concept(text="alive")
    )
    _plain_observation(b, item, "Follow-up status", value, "follow-up")
