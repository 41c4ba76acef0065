"""The timeline read model (SPEC §4): every clinical event in clinical order, with its fate.

Retracted events stay on the timeline, marked, so a reader sees what was withdrawn, by whom and
why; amended ones show the body in force next to the original. Corrections are not rows of
their own: each appears under the event it corrected.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from msgspec import Struct

from domain import events as ev
from projections.effective import Correction, Item, Status, all_items


class CorrectionView(Struct, frozen=True, kw_only=True):
    """A correction of a timeline row: the correcting event and who made it, when and why."""

    event_id: UUID
    kind: Literal["amended", "retracted"]
    version: int
    recorded_at: datetime | None
    recorded_by: str | None
    reason: str


class TimelineEntry(Struct, frozen=True, kw_only=True):
    event_id: UUID
    version: int
    type: str
    occurred: str
    date_estimated: bool
    status: Status
    summary: str
    # The clinical body in force (for a retracted row: as it stood when retracted).
    event: dict[str, Any]
    # The body first recorded, when a correction changed or withdrew it.
    original: dict[str, Any] | None
    corrections: list[CorrectionView]
    recorded_at: datetime | None
    recorded_by: str | None


class TimelineView(Struct, frozen=True, kw_only=True):
    patient_id: str
    events: list[TimelineEntry]


def compute_timeline(patient_id: str, history: Sequence[ev.AnyEvent]) -> TimelineView:
    return timeline_of(patient_id, all_items(history))


def timeline_of(patient_id: str, items: Sequence[Item]) -> TimelineView:
    """The timeline from every item, retracted ones included (clinical order)."""
    return TimelineView(patient_id=patient_id, events=[_entry(item) for item in items])


def _entry(item: Item) -> TimelineEntry:
    body = item.body
    return TimelineEntry(
        event_id=item.event_id,
        version=item.version,
        type=body.type,
        occurred=body.occurred,
        date_estimated=body.date_estimated,
        status=item.status,
        summary=summarize(body),
        event=_body_dict(body, item),
        original=None if item.status == "active" else _body_dict(item.original, item),
        corrections=[_correction(c) for c in item.corrections],
        recorded_at=item.original.recorded_at,
        recorded_by=item.original.recorded_by,
    )


def _body_dict(body: ev.ClinicalEvent, item: Item) -> dict[str, Any]:
    """The clinical body under the event's identity.

    Server-assigned fields are left out: the row carries version, recorded_at and recorded_by,
    the hashes belong to history and verify, and a replacement body has none of its own.
    """
    data = ev.to_builtins(body)
    for name in ev.SERVER_FIELDS:
        data.pop(name, None)
    data["event_id"] = str(item.event_id)
    data["patient_id"] = item.original.patient_id
    return data


def _correction(c: Correction) -> CorrectionView:
    return CorrectionView(
        event_id=c.event_id,
        kind=c.kind,
        version=c.version,
        recorded_at=c.recorded_at,
        recorded_by=c.recorded_by,
        reason=c.reason,
    )


# -- one human line per event ---------------------------------------------------------------

_MODALITY = {
    "ct": "CT",
    "mri": "MRI",
    "ultrasound": "ultrasound",
    "contrast_ultrasound": "contrast ultrasound",
    "pet_ct": "PET-CT",
    "xray": "X-ray",
    "endoscopy": "endoscopy",
}
_FINDING_CHARS = 60
_TIMES = "\N{MULTIPLICATION SIGN}"


def summarize(body: ev.ClinicalEvent) -> str:
    """A short line a clinician can scan, e.g. "CTC 4 per 7.5 mL (7.5 mL)" or "cT4N2M1"."""
    match body:
        case ev.PatientRegistered():
            born = f", born {body.birth_year}" if body.birth_year is not None else ""
            return f"Registered: {_words(body.sex)}{born}, primary site {body.primary_site}"
        case ev.DiagnosisConfirmed():
            parts = [_words(body.histology)]
            if body.grade != "GX":
                parts.append(body.grade)
            if body.tumor_location != "unknown":
                parts.append(f"{body.tumor_location} third")
            return f"Diagnosis: {', '.join(parts)} ({body.basis})"
        case ev.Biopsy():
            how = body.method if body.guidance is None else f"{body.method}, {body.guidance}"
            text = f"Biopsy {body.site} ({how})"
            if body.histology is not None:
                grade = f" {body.grade}" if body.grade not in (None, "GX") else ""
                text += f": {_words(body.histology)}{grade}"
            return text
        case ev.Imaging():
            text = f"Imaging {_MODALITY[body.modality]} {body.region}"
            if body.lesions:
                n = len(body.lesions)
                text += f": {_count(n, 'lesion')}"
                new = sum(lesion.new for lesion in body.lesions)
                if new:
                    text += f" ({new} new)"
            elif body.finding:
                text += f": {_shorten(body.finding)}"
            return text
        case ev.Staging():
            return f"{body.context}{body.t}{body.n}{body.m}"
        case ev.Chemotherapy():
            text = f"Chemotherapy {body.regimen} {_TIMES} {_count(body.courses, 'course')}"
            if body.intent != "unknown":
                text += f" ({body.intent})"
            if body.ended is not None:
                text += f", until {body.ended}"
            return text
        case ev.Radiotherapy():
            text = f"Radiotherapy {body.target} {_num(body.dose_gy)} Gy"
            text += f" in {_count(body.fractions, 'fraction')}"
            return text if body.intent == "unknown" else f"{text} ({body.intent})"
        case ev.Ablation():
            text = f"Ablation {_words(body.modality)} {body.site}"
            return (
                text
                if body.target_lesion_id is None
                else f"{text} (lesion {body.target_lesion_id})"
            )
        case ev.Surgery():
            text = f"Surgery {body.procedure}"
            return text if body.intent == "unknown" else f"{text} ({body.intent})"
        case ev.TherapyDeclined():
            scope = "all antitumor therapy" if body.scope == "all_antitumor" else body.scope
            return f"Declined {scope}"
        case ev.CtcCount():
            per = round(body.count * 7.5 / body.blood_volume_ml, 1)
            if body.blood_volume_ml == 7.5:
                return f"CTC {body.count} per 7.5 mL (7.5 mL)"
            # A normalised value differs from the raw count: show both.
            return f"CTC {_num(per)} per 7.5 mL ({body.count} in {_num(body.blood_volume_ml)} mL)"
        case ev.FollowUp():
            return f"Follow-up: {_words(body.status)}"
        case ev.Death():
            cause = "cause unknown" if body.cause == "unknown" else body.cause
            return f"Death ({cause})"
    raise AssertionError(f"no summary for {type(body).__name__}")  # pragma: no cover


def _words(code: str) -> str:
    return code.replace("_", " ")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _num(x: float) -> str:
    return f"{x:g}"


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= _FINDING_CHARS:
        return line
    # Cut at a word boundary so the line never ends in half a word.
    return line[:_FINDING_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "\N{HORIZONTAL ELLIPSIS}"
