"""The patient, the primary cancer condition and its course: grade, AJCC staging, tumors,
imaging and the disease status from the response read model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain import events as ev
from projections.effective import Item
from projections.fhir import codes as fc
from projections.fhir.bundle import (
    Bundle,
    Resource,
    instant,
    observation_status,
    quantity,
    ref,
    text_or_none,
    with_note,
)
from projections.response import compute_response

# -- one mapper per event type ------------------------------------------------------------------


def map_patient(b: Bundle, item: Item, body: ev.PatientRegistered, death: ev.Death | None) -> None:
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


def map_condition(b: Bundle, item: Item, body: ev.DiagnosisConfirmed, site: str) -> None:
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
        resource["recordedDate"] = instant(item.original.recorded_at)
    resource["evidence"] = [
        {"code": [fc.concept(fc.EVIDENCE[body.basis], text=body.method or body.basis)]}
    ]
    condition = b.add(item, with_note(resource, item), "primary_condition", "condition")
    if item.status != "retracted" or b.condition is None:
        b.condition = condition
    map_grade(b, item, body)


def map_grade(b: Bundle, item: Item, body: ev.DiagnosisConfirmed) -> None:
    value = fc.GRADE.get(body.grade)
    resource: Resource = {
        "resourceType": "Observation",
        "extension": b.related_condition(),
        "status": observation_status(item),
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


def map_staging(b: Bundle, item: Item, body: ev.Staging) -> None:
    kind = fc.STAGE_TYPE.get(body.context, fc.STAGE_TYPE["other"])
    common: Resource = {
        "category": [fc.CATEGORY_IMAGING],  # as the IG's TNM examples (EX_Basic.fsh)
        "subject": b.subject(),
        **({"focus": [ref(b.condition)]} if b.condition else {}),
        "effectiveDateTime": body.occurred,
        "method": fc.concept(fc.AJCC8_METHOD),
    }
    members = []
    for axis, value in (("t", body.t), ("n", body.n), ("m", body.m)):
        code = f"{body.context}{value}"
        member: Resource = {
            "resourceType": "Observation",
            "status": observation_status(item),
            **common,
            "code": fc.concept(kind[axis]),
            "valueCodeableConcept": fc.concept(fc.coding(fc.AJCC, code, code), text=code),
        }
        members.append(b.add(item, member, fc.STAGE_PROFILE_KEY[axis], axis))
    group = body.stage_group or "unknown"
    tnm = f"{body.context}T{body.t[1:]}N{body.n[1:]}M{body.m[1:]}"
    resource: Resource = {
        "resourceType": "Observation",
        "status": observation_status(item),
        **common,
        "code": fc.concept(kind["group"]),
        "hasMember": [ref(m) for m in members],
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
    stage = b.add(item, with_note(resource, item, tnm), "stage_group", "stage-group")
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
                "assessment": [ref(stage)],
                "type": fc.concept(fc.AJCC8_METHOD),
            }
        ]


@dataclass
class Tumors:
    """One Tumor BodyStructure per `lesion_id`, made at the lesion's first mention."""

    b: Bundle
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


def map_imaging(b: Bundle, tumors: Tumors, item: Item, body: ev.Imaging) -> None:
    method = fc.TUMOR_SIZE_METHOD.get(body.modality)
    sizes = []
    for index, lesion in enumerate(body.lesions):
        tumor = tumors.get(item, lesion)
        longest, *others = lesion.dimensions_mm
        components = [
            {"code": fc.concept(fc.LONGEST_DIMENSION), "valueQuantity": quantity(longest, "mm")}
        ] + [
            {"code": fc.concept(fc.OTHER_DIMENSION), "valueQuantity": quantity(d, "mm")}
            for d in others
        ]
        size: Resource = {
            "resourceType": "Observation",
            "status": observation_status(item),
            "category": [fc.CATEGORY_IMAGING],
            "code": fc.concept(fc.TUMOR_SIZE_CODE),
            "subject": b.subject(),
            "focus": [ref(tumor)],
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
        **({"result": [ref(s) for s in sizes]} if sizes else {}),
        **({"conclusion": body.finding} if body.finding else {}),
    }
    b.add(item, report, None, "report")


def map_disease_status(b: Bundle, items: dict[UUID, Item], history: list[ev.AnyEvent]) -> None:
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
            **({"focus": [ref(b.condition)]} if b.condition else {}),
            "effectiveDateTime": assessment.occurred,
            "valueCodeableConcept": fc.concept(
                fc.DISEASE_STATUS[assessment.category], text=assessment.category
            ),
            "note": [{"text": n} for n in notes],
        }
        b.add(item, resource, "disease_status", "disease-status")


def map_biopsy(b: Bundle, item: Item, body: ev.Biopsy) -> None:
    resource: Resource = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": fc.concept(text=f"{body.method.capitalize()} biopsy of {body.site}"),
        "subject": b.subject(),
        "performedDateTime": body.occurred,
        "bodySite": [fc.concept(text=body.site)],
    }
    finding = text_or_none(body.finding, f"Guidance: {body.guidance}." if body.guidance else None)
    b.add(item, with_note(resource, item, finding), "procedure", "biopsy")
