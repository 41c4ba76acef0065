"""The per-patient read models by name, the cohort row derived from them, and replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from domain import events as ev
from projections.ctc import CtcView, compute_ctc, default_rule
from projections.response import ResponseView, compute_response
from projections.stage import StageView, compute_stage
from projections.survival import SurvivalView, compute_survival
from projections.timeline import TimelineView, compute_timeline

History = Sequence[ev.AnyEvent]

_COMPUTE: dict[str, Callable[..., msgspec.Struct]] = {
    "timeline": compute_timeline,
    "stage": compute_stage,
    "ctc": compute_ctc,
    "response": compute_response,
    "survival": compute_survival,
}
PATIENT_VIEWS: tuple[str, ...] = tuple(_COMPUTE)
VIEW_TYPES: dict[str, type[msgspec.Struct]] = {
    "timeline": TimelineView,
    "stage": StageView,
    "ctc": CtcView,
    "response": ResponseView,
    "survival": SurvivalView,
}
# The stored CTC view uses the default rule; another rule is computed on request.
STORED_CTC_RULE = "ge1"


def effective_rule(rule: str | None) -> str:
    return rule or default_rule()


def compute(view: str, patient_id: str, history: History, *, rule: str | None = None) -> Any:
    if view == "ctc":
        return compute_ctc(patient_id, history, rule=rule)
    return _COMPUTE[view](patient_id, history)


class PatientRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the cohort index (SPEC §4 **patients**)."""

    patient_id: str
    sex: str | None
    birth_year: int | None
    primary_site: str | None
    histology: str | None
    stage_group: str | None
    ctc_latest_per_7_5_ml: float | None
    ctc_trend: str
    concordance: str
    survival_status: str | None
    os_months: float | None
    events: int
    last_recorded_at: datetime | None


class PatientPage(msgspec.Struct, frozen=True, kw_only=True):
    patients: list[PatientRow]
    next_cursor: str | None
    total: int | None = None
    # The cohort index is kept by the projector and may lag the ledger: the position it has
    # applied up to, and how many recorded events it has not applied yet (0: current).
    position: int | None = None
    lag: int | None = None


def cohort_row(patient_id: str, history: History) -> PatientRow:
    return project(patient_id, history)[1]


def project(patient_id: str, history: History) -> tuple[dict[str, msgspec.Struct], PatientRow]:
    """Every stored read model of one patient, each computed once, and its cohort row."""
    stage = compute_stage(patient_id, history)
    ctc = compute_ctc(patient_id, history, rule=STORED_CTC_RULE)
    survival = compute_survival(patient_id, history)
    views: dict[str, msgspec.Struct] = {
        "timeline": compute_timeline(patient_id, history),
        "stage": stage,
        "ctc": ctc,
        "response": compute_response(patient_id, history),
        "survival": survival,
    }
    registration = _registration_in_force(history)
    row = PatientRow(
        patient_id=patient_id,
        sex=registration.sex if registration else None,
        birth_year=registration.birth_year if registration else None,
        primary_site=registration.primary_site if registration else None,
        histology=stage.histology,
        stage_group=stage.current.stage_group if stage.current else None,
        ctc_latest_per_7_5_ml=ctc.latest_per_7_5_ml,
        ctc_trend=ctc.trend,
        concordance=ctc.concordance.status,
        survival_status=survival.status,
        os_months=survival.os_months,
        events=len(history),
        last_recorded_at=history[-1].recorded_at if history else None,
    )
    return views, row


def _registration_in_force(history: History) -> ev.PatientRegistered | None:
    registration = next((e for e in history if isinstance(e, ev.PatientRegistered)), None)
    # An amendment may have corrected sex or birth year.
    for e in history:
        if (
            isinstance(e, ev.EventAmended)
            and registration is not None
            and e.target_event_id == registration.event_id
            and isinstance(e.replacement, ev.PatientRegistered)
        ):
            registration = e.replacement
    return registration


class ReplayStep(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    type: str
    occurred: str
    recorded_at: datetime | None
    stage_group: str | None
    stage_trend: str
    ctc_trend: str
    ctc_latest_per_7_5_ml: float | None
    response: str | None
    survival_status: str | None
    os_months: float | None


def replay(patient_id: str, history: History) -> list[ReplayStep]:
    """The derived state after each event of the stream, in stream order."""
    steps = []
    for i, entry in enumerate(history, start=1):
        upto = history[:i]
        stage = compute_stage(patient_id, upto)
        ctc = compute_ctc(patient_id, upto, rule="ge1")
        response = compute_response(patient_id, upto)
        survival = compute_survival(patient_id, upto)
        steps.append(
            ReplayStep(
                version=entry.version or i,
                type=entry.type,
                occurred=entry.occurred,
                recorded_at=entry.recorded_at,
                stage_group=stage.current.stage_group if stage.current else None,
                stage_trend=stage.trend,
                ctc_trend=ctc.trend,
                ctc_latest_per_7_5_ml=ctc.latest_per_7_5_ml,
                response=response.current_category,
                survival_status=survival.status,
                os_months=survival.os_months,
            )
        )
    return steps
