"""One patient's record as a FHIR R4 (4.0.1) Bundle of type `collection`, mapped to mCODE STU4.

Built from the patient's events as they count (`effective.all_items`): amended events appear
as their current version (`meta.versionId` = 1 + corrections) and retracted ones as
`entered-in-error`, each correction with a `Provenance` naming its author, time and reason.
Every resource carries `meta.source` = `urn:uuid:<ledger event id>` of the event it comes from.
Resource ids are UUIDv5 of that event id (and a part name), so the same history always gives
the same Bundle. The codes and where each comes from are in `projections.fhir_codes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from domain import events as ev
from domain.errors import NotFound
from projections import fhir_codes as fc
from projections.ctc import per_7_5_ml
from projections.effective import Item, all_items
from projections.response import compute_response

if TYPE_CHECKING:
    from projections.root import OncoLedger

Resource = dict[str, Any]
# A CTC value per 7.5 mL in UCUM: 7.5 mL written as the integer factor 7500 uL, as UCUM needs.
PER_7_5_ML_UCUM = "{cells}/(7500.uL)"


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ref(resource: Resource) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _quantity(value: float, unit: str, code: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": fc.UCUM, "code": code or unit}


def _text_or_none(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


@dataclass
class _Bundle:
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
            meta["lastUpdated"] = _instant(updated)
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
        return _ref(self.patient)

    def reason(self) -> dict[str, Any]:
        """`reasonReference` to the primary cancer condition, when there is one."""
        return {"reasonReference": [_ref(self.condition)]} if self.condition else {}

    def related_condition(self) -> list[dict[str, Any]]:
        if self.condition is None:
            return []
        return [{"url": fc.EXT["related_condition"], "valueReference": _ref(self.condition)}]


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


def _observation_status(item: Item) -> str:
    return "amended" if item.status == "amended" else "final"


def _note(item: Item, *extra: str | None) -> list[dict[str, str]]:
    texts = [t for t in (*extra, item.body.note) if t]
    if item.body.date_estimated:
        texts.append("Date estimated by the abstractor.")
    return [{"text": t} for t in texts]


def _with_note(resource: Resource, item: Item, *extra: str | None) -> Resource:
    notes = _note(item, *extra)
    if notes:
        resource["note"] = notes
    return resource


# -- one mapper per event type ------------------------------------------------------------------


def _patient(b: _Bundle, item: Item, body: ev.PatientRegistered, death: ev.Death | None) -> None:
    resource: Resource = {
        "resourceType": "Patient",
        "identifier": [{"use": "usual", "system": fc.PATIENT_ID_SYSTEM, "value": b.patient_id}],
        "active": True,
        # Pseudonymous ledger: no name, said so the way US Core asks (us-core-6).
        "name": [{"extension": [{"url": fc.EXT["data_absent_reason"], "valueCode": "masked"}]}],
        "gender": body.sex,
    }
    birthsex = {"male": "M", "female": "F", "unknown": "UNK"}.get(body.sex)
    if birthsex is not None:
        resource["extension"] = [{"url": fc.EXT["birthsex"], "valueCode": birthsex}]
    if body.birth_year is not None:
        resource["birthDate"] = str(body.birth_year)
    if death is not None:
        resource["deceasedDateTime"] = death.occurred
    b.patient = b.add(item, resource, "patient", "patient")


def _condition(b: _Bundle, item: Item, body: ev.DiagnosisConfirmed, site: str) -> None:
    esophagus = site.strip().lower() in ("esophagus", "oesophagus")
    codings: list[dict[str, Any]] = []
    if esophagus:
        if body.histology == "squamous_cell_carcinoma":
            codings.append(fc.ESCC_DISORDER)
        icd, display = fc.ESOPHAGUS_ICD10CM[body.tumor_location]
        codings.append(fc.coding(fc.ICD10CM, icd, display))
    histology_text = fc.HISTOLOGY_TEXT[body.histology]
    resource: Resource = {
        "resourceType": "Condition",
        "clinicalStatus": fc.concept(fc.coding(fc.CONDITION_CLINICAL, "active", "Active")),
        "verificationStatus": fc.concept(
            fc.coding(fc.CONDITION_VERIFICATION, "confirmed", "Confirmed")
        ),
        "category": [
            fc.concept(fc.coding(fc.CONDITION_CATEGORY, "problem-list-item", "Problem List Item"))
        ],
        "code": fc.concept(*codings, text=f"{histology_text} of {site}"),
        "subject": b.subject(),
        "onsetDateTime": body.occurred,
    }
    morphology = fc.HISTOLOGY.get(body.histology)
    if morphology:
        resource["extension"] = [
            {
                "url": fc.EXT["histology"],
                "valueCodeableConcept": fc.concept(*morphology, text=histology_text),
            }
        ]
    if esophagus:
        topo, topo_display = fc.ESOPHAGUS_TOPOGRAPHY[body.tumor_location]
        resource["bodySite"] = [fc.concept(fc.coding(fc.ICDO3, topo, topo_display), text=site)]
    else:
        resource["bodySite"] = [fc.concept(text=site)]
    if item.original.recorded_at is not None:
        resource["recordedDate"] = _instant(item.original.recorded_at)
    resource["evidence"] = [
        {"code": [fc.concept(fc.EVIDENCE[body.basis], text=body.method or body.basis)]}
    ]
    condition = b.add(item, _with_note(resource, item), "primary_condition", "condition")
    if item.status != "retracted" or b.condition is None:
        b.condition = condition
    _grade(b, item, body)


def _grade(b: _Bundle, item: Item, body: ev.DiagnosisConfirmed) -> None:
    value = fc.GRADE.get(body.grade)
    resource: Resource = {
        "resourceType": "Observation",
        "extension": b.related_condition(),
        "status": _observation_status(item),
        "category": [fc.CATEGORY_LABORATORY],
        "code": fc.concept(fc.GRADE_CODE),
        "subject": b.subject(),
        "effectiveDateTime": body.occurred,
        "valueCodeableConcept": (
            fc.concept(value, text=body.grade)
            if value
            else fc.concept(text="GX: grade cannot be assessed")
        ),
    }
    b.add(item, resource, "histologic_grade", "grade")


def _ajcc_group_code(group: str) -> str:
    """AJCC's own stage-group code: arabic numeral plus letters (IIIC → 3C, IVB → 4B), as the
    IG's examples wrote them before SNOMED equivalents existed (fhir-mCODE-ig e7a196b)."""
    for roman, arabic in (("IV", "4"), ("III", "3"), ("II", "2"), ("I", "1")):
        if group.startswith(roman):
            return arabic + group[len(roman) :]
    return group


def _staging(b: _Bundle, item: Item, body: ev.Staging) -> None:
    kind = fc.STAGE_TYPE.get(body.context, fc.STAGE_TYPE["other"])
    common: Resource = {
        "category": [fc.CATEGORY_IMAGING],  # as the IG's TNM examples (EX_Basic.fsh)
        "subject": b.subject(),
        **({"focus": [_ref(b.condition)]} if b.condition else {}),
        "effectiveDateTime": body.occurred,
        "method": fc.concept(fc.AJCC8_METHOD),
    }
    members = []
    for axis, value in (("t", body.t), ("n", body.n), ("m", body.m)):
        code = f"{body.context}{value}"
        member: Resource = {
            "resourceType": "Observation",
            "status": _observation_status(item),
            **common,
            "code": fc.concept(kind[axis]),
            "valueCodeableConcept": fc.concept(fc.coding(fc.AJCC, code, code), text=code),
        }
        members.append(b.add(item, member, fc.STAGE_PROFILE_KEY[axis], axis))
    group = body.stage_group or "unknown"
    tnm = f"{body.context}T{body.t[1:]}N{body.n[1:]}M{body.m[1:]}"
    resource: Resource = {
        "resourceType": "Observation",
        "status": _observation_status(item),
        **common,
        "code": fc.concept(kind["group"]),
        "hasMember": [_ref(m) for m in members],
    }
    if group == "unknown":
        resource["dataAbsentReason"] = fc.concept(
            fc.coding(fc.DATA_ABSENT, "unknown", "Unknown"),
            text=f"{tnm}: no AJCC 8 stage group defined for it here",
        )
    else:
        resource["valueCodeableConcept"] = fc.concept(
            fc.coding(fc.AJCC, _ajcc_group_code(group), group), text=group
        )
    stage = b.add(item, _with_note(resource, item, tnm), "stage_group", "stage-group")
    # The group goes before its members, the way a reader expects to meet them.
    b.entries.remove(stage)
    b.entries.insert(len(b.entries) - 3, stage)
    if item.status != "retracted" and b.condition is not None:
        b.condition["stage"] = [
            {
                **(
                    {"summary": stage["valueCodeableConcept"]}
                    if "valueCodeableConcept" in stage
                    else {}
                ),
                "assessment": [_ref(stage)],
                "type": fc.concept(fc.AJCC8_METHOD),
            }
        ]


@dataclass
class _Tumors:
    """One Tumor BodyStructure per `lesion_id`, made at the lesion's first mention."""

    b: _Bundle
    made: dict[str, Resource] = field(default_factory=dict)

    def get(self, item: Item, lesion: ev.Lesion) -> Resource:
        tumor = self.made.get(lesion.lesion_id)
        if tumor is None:
            resource: Resource = {
                "resourceType": "BodyStructure",
                "extension": self.b.related_condition(),
                "identifier": [
                    {
                        "use": "usual",
                        "type": fc.concept(fc.coding(fc.RESOURCE_TYPES, "BodyStructure")),
                        "value": lesion.lesion_id,
                    }
                ],
                "active": True,
                "morphology": fc.concept(fc.TUMOR_MORPHOLOGY),
                "location": fc.concept(text=lesion.site),
                "description": f"Lesion {lesion.lesion_id}: {lesion.site}",
                "patient": self.b.subject(),
            }
            tumor = self.b.add(item, resource, "tumor", f"tumor/{lesion.lesion_id}")
            self.made[lesion.lesion_id] = tumor
        return tumor


def _imaging(b: _Bundle, tumors: _Tumors, item: Item, body: ev.Imaging) -> None:
    method = fc.TUMOR_SIZE_METHOD.get(body.modality)
    sizes = []
    for index, lesion in enumerate(body.lesions):
        tumor = tumors.get(item, lesion)
        longest, *others = lesion.dimensions_mm
        components = [
            {"code": fc.concept(fc.LONGEST_DIMENSION), "valueQuantity": _quantity(longest, "mm")}
        ] + [
            {"code": fc.concept(fc.OTHER_DIMENSION), "valueQuantity": _quantity(d, "mm")}
            for d in others
        ]
        size: Resource = {
            "resourceType": "Observation",
            "status": _observation_status(item),
            "category": [fc.CATEGORY_IMAGING],
            "code": fc.concept(fc.TUMOR_SIZE_CODE),
            "subject": b.subject(),
            "focus": [_ref(tumor)],
            "effectiveDateTime": body.occurred,
            "method": fc.concept(*([method] if method else []), text=body.modality),
            "component": components,
        }
        if lesion.new:
            size["note"] = [{"text": "New lesion."}]
        sizes.append(b.add(item, size, "tumor_size", f"size/{index}"))
    report: Resource = {
        "resourceType": "DiagnosticReport",
        "status": "amended" if item.status == "amended" else "final",
        "code": fc.concept(text=f"{body.modality} {body.region}"),
        "subject": b.subject(),
        "effectiveDateTime": body.occurred,
        **({"result": [_ref(s) for s in sizes]} if sizes else {}),
        **({"conclusion": body.finding} if body.finding else {}),
    }
    b.add(item, report, None, "report")


def _disease_status(b: _Bundle, items: dict[UUID, Item], history: list[ev.AnyEvent]) -> None:
    """CancerDiseaseStatus from each RECIST-style assessment of the response read model."""
    view = compute_response(b.patient_id, history)
    treated = [lesion.lesion_id for lesion in view.lesions if lesion.locally_treated]
    for assessment in view.assessments:
        if assessment.category is None or not assessment.event_ids:
            continue
        item = items[assessment.event_ids[0]]
        notes = [
            f"Target-lesion sum {assessment.sum_mm:g} mm, RECIST 1.1 category "
            f"{assessment.category} (ledger response read model)."
        ]
        if treated:
            notes.append(
                f"Locally treated lesion(s) {', '.join(treated)}: not evaluable by RECIST."
            )
        resource: Resource = {
            "resourceType": "Observation",
            "extension": [
                {
                    "url": fc.EXT["evidence_type"],
                    "valueCodeableConcept": fc.concept(fc.IMAGING_EVIDENCE),
                }
            ],
            "status": "final",
            "category": [fc.CATEGORY_IMAGING],
            "code": fc.concept(fc.DISEASE_STATUS_CODE),
            "subject": b.subject(),
            **({"focus": [_ref(b.condition)]} if b.condition else {}),
            "effectiveDateTime": assessment.occurred,
            "valueCodeableConcept": fc.concept(
                fc.DISEASE_STATUS[assessment.category], text=assessment.category
            ),
            "note": [{"text": n} for n in notes],
        }
        b.add(item, resource, "disease_status", "disease-status")


def _intent(intent: str) -> list[dict[str, Any]]:
    code = fc.INTENT.get(intent)
    if code is None:
        return []
    return [{"url": fc.EXT["intent"], "valueCodeableConcept": fc.concept(code)}]


def _intent_note(intent: str) -> str | None:
    return f"Treatment timing: {intent}." if intent in ("neoadjuvant", "adjuvant") else None


def _chemotherapy(b: _Bundle, item: Item, body: ev.Chemotherapy) -> None:
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
        _with_note(resource, item, _intent_note(body.intent))
        b.add(item, resource, "medication_administration", f"agent/{index}")


def _radiotherapy(b: _Bundle, item: Item, body: ev.Radiotherapy) -> None:
    volume: Resource = {
        "resourceType": "BodyStructure",
        "description": body.target,
        "patient": b.subject(),
    }
    volume = b.add(item, volume, "radiotherapy_volume", "volume")
    dose = {
        "url": fc.EXT["dose_to_volume"],
        "extension": [
            {"url": "volume", "valueReference": _ref(volume)},
            # The profile fixes the unit to cGy.
            {
                "url": "totalDoseDelivered",
                "valueQuantity": _quantity(round(body.dose_gy * 100, 6), "cGy"),
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
    b.add(item, _with_note(resource, item, _intent_note(body.intent)), "radiotherapy", "course")


def _surgical(b: _Bundle, item: Item, code_text: str, intent: str, site: str | None) -> None:
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
    b.add(item, _with_note(resource, item, _intent_note(intent)), "surgical_procedure", "surgery")


def _ablation(b: _Bundle, item: Item, body: ev.Ablation) -> None:
    target = f" of lesion {body.target_lesion_id}" if body.target_lesion_id else ""
    _surgical(b, item, f"{body.modality.capitalize()} ablation{target}", "unknown", body.site)


_DECLINED_TEXT = {
    "all_antitumor": "All anti-tumor therapy",
    "chemotherapy": "Chemotherapy",
    "radiotherapy": "Radiotherapy",
    "surgery": "Surgery",
    "other": "Therapy",
}


def _declined(b: _Bundle, item: Item, body: ev.TherapyDeclined) -> None:
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
    _with_note(resource, item, f"Declined on {body.occurred}.")
    b.add(item, resource, "procedure", "declined")


def _biopsy(b: _Bundle, item: Item, body: ev.Biopsy) -> None:
    resource: Resource = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": fc.concept(text=f"{body.method.capitalize()} biopsy of {body.site}"),
        "subject": b.subject(),
        "performedDateTime": body.occurred,
        "bodySite": [fc.concept(text=body.site)],
    }
    finding = _text_or_none(body.finding, f"Guidance: {body.guidance}." if body.guidance else None)
    b.add(item, _with_note(resource, item, finding), "procedure", "biopsy")


def _ctc(b: _Bundle, item: Item, body: ev.CtcCount) -> None:
    per = round(float(per_7_5_ml(body.count, body.blood_volume_ml)), 2)
    resource: Resource = {
        "resourceType": "Observation",
        "extension": b.related_condition(),
        "status": _observation_status(item),
        "category": [fc.CATEGORY_LABORATORY],
        "code": fc.CTC_CODE,
        "subject": b.subject(),
        "effectiveDateTime": body.occurred,
        "valueQuantity": _quantity(per, "cells/7.5 mL", PER_7_5_ML_UCUM),
        **({"method": fc.concept(text=body.assay)} if body.assay else {}),
        **({"specimen": {"display": f"Blood sample {body.sample_id}"}} if body.sample_id else {}),
        "component": [
            {
                "code": fc.concept(text="Circulating tumor cells counted in the sample"),
                "valueQuantity": _quantity(body.count, "cells", "{cells}"),
            },
            {
                "code": fc.concept(text="Blood volume examined"),
                "valueQuantity": _quantity(body.blood_volume_ml, "mL"),
            },
        ],
    }
    b.add(item, _with_note(resource, item), "tumor_marker", "ctc")


def _plain_observation(b: _Bundle, item: Item, what: str, value: dict[str, Any], part: str) -> None:
    """An event mCODE has no profile for, as a plain Observation with a text-only code."""
    resource: Resource = {
        "resourceType": "Observation",
        "status": _observation_status(item),
        "code": fc.concept(text=what),
        "subject": b.subject(),
        "effectiveDateTime": item.body.occurred,
        "valueCodeableConcept": value,
    }
    b.add(item, _with_note(resource, item), None, part)


def _death_cause(b: _Bundle, item: Item, body: ev.Death) -> None:
    _plain_observation(b, item, "Cause of death", fc.concept(text=body.cause), "death")
    if item.corrections and b.patient is not None:
        # A corrected death changed the Patient's deceasedDateTime too: a new Patient version,
        # and the correction's Provenance names the Patient as well.
        meta = b.patient["meta"]
        meta["versionId"] = str(int(meta["versionId"]) + len(item.corrections))
        latest = _instant(item.corrections[-1].recorded_at)
        if latest is not None and latest > meta.get("lastUpdated", ""):
            meta["lastUpdated"] = latest
        b.by_event[item.event_id].append(b.patient)


def _follow_up(b: _Bundle, item: Item, body: ev.FollowUp) -> None:
    value = (
        fc.concept(fc.LOST_TO_FOLLOW_UP, text="lost to follow-up")
        if body.status == "lost_to_follow_up"
        else fc.concept(text="alive")
    )
    _plain_observation(b, item, "Follow-up status", value, "follow-up")


# -- corrections --------------------------------------------------------------------------------


def _provenance(b: _Bundle, item: Item) -> None:
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
            "target": [_ref(t) for t in targets],
            "recorded": _instant(correction.recorded_at) or _instant(datetime.now(UTC)),
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

_Mapper = Callable[[_Bundle, Item, Any], None]
_MAPPERS: dict[type[ev.Event], _Mapper] = {
    ev.Biopsy: _biopsy,
    ev.Staging: _staging,
    ev.Chemotherapy: _chemotherapy,
    ev.Radiotherapy: _radiotherapy,
    ev.Ablation: _ablation,
    ev.TherapyDeclined: _declined,
    ev.CtcCount: _ctc,
    ev.Death: _death_cause,
    ev.FollowUp: _follow_up,
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
    b = _Bundle(patient_id)
    _patient(b, registration, registration.body, death if isinstance(death, ev.Death) else None)
    site = registration.body.primary_site
    # Conditions first: every other resource refers to the primary cancer condition.
    for item in items:
        if isinstance(item.body, ev.DiagnosisConfirmed):
            _condition(b, item, item.body, site)
    tumors = _Tumors(b)
    # A lesion's Tumor comes from its first mention in force (a retracted one only if none is).
    for item in sorted(items, key=lambda i: i.status == "retracted"):
        if isinstance(item.body, ev.Imaging):
            for lesion in item.body.lesions:
                tumors.get(item, lesion)
    for item in items:
        body = item.body
        if isinstance(body, ev.Imaging):
            _imaging(b, tumors, item, body)
        elif isinstance(body, ev.Surgery):
            _surgical(b, item, body.procedure, body.intent, None)
        else:
            mapper = _MAPPERS.get(type(body))
            if mapper is not None:
                mapper(b, item, body)
    _disease_status(b, {i.event_id: i for i in items}, history)
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
        "timestamp": _instant(max(recorded)) if recorded else _instant(datetime.now(UTC)),
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
            f"patient {patient_id} was not yet registered as of {_instant(as_of)}",
            field="as_of",
            rule="as_of",
        )
    return fhir_bundle(patient_id, history)
