"""The **stage** read model (SPEC §4): a patient's TNM assessments and their AJCC 8 groups.

Stage groups are recomputed here from the histology of the diagnosis in force, never read from
the stored `stage_group`: amending the diagnosis (say squamous cell carcinoma to adenocarcinoma)
restages every assessment, including those recorded before the amendment.

Each assessment names the AJCC 8 table that produced its group (`table`, see
`domain.staging.staging_table`) and, when the group is `unknown`, why (`unknown_reason`). The
grade and tumour location of the diagnosis in force pick the pTNM row.

`trend` compares the first assessment with the latest one, whatever their contexts, on one
scale (`domain.staging.compare_groups`: stage number, then subgroup, a group without a letter
standing for all its subgroups); `trend_from` and `trend_to` name the two assessments compared.

`at_diagnosis` is the first assessment dated on or after the diagnosis date (the first
`diagnosis_confirmed` in force, as for survival); a partial date counts as "on or after" when
any day it stands for is. With no diagnosis, or every assessment dated before it, it is the
first assessment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import Literal, cast
from uuid import UUID

import msgspec

from domain import events as ev
from domain.dates import parse as parse_date
from domain.staging import compare_groups, stage_group, staging_table, unknown_reason
from projections.effective import Item, in_force, of_type

StageTrend = Literal["unchanged", "improved", "worsened", "insufficient_data"]
TREND_RULE = (
    "first and latest assessment, any context, on one scale: stage number, then subgroup "
    "(0 < I < IA < IB < IC < II < IIA < IIB < III < IIIA < IIIB < IVA < IVB); a group without "
    "a letter equals each of its subgroups"
)


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    occurred: str
    context: str
    t: str
    n: str
    m: str
    tnm: str
    stage_group: str
    system: str
    table: str | None = None
    unknown_reason: str | None = None


class StageView(msgspec.Struct, frozen=True, kw_only=True):
    patient_id: str
    histology: str | None
    current: Assessment | None
    at_diagnosis: Assessment | None
    history: list[Assessment]
    trend: StageTrend
    trend_from: UUID | None = None
    trend_to: UUID | None = None
    trend_rule: str = TREND_RULE


def stage_trend(earlier: str, later: str) -> StageTrend:
    """`compare_groups` typed for the views: it returns only these four words."""
    return cast(StageTrend, compare_groups(earlier, later))


def diagnoses_in_force(items: Sequence[Item]) -> list[ev.DiagnosisConfirmed]:
    return [body for _, body in of_type(items, ev.DiagnosisConfirmed)]


def assessments_in_force(items: Sequence[Item]) -> list[Assessment]:
    """The staging events in force, in clinical order, grouped by the diagnosis in force."""
    diagnoses = diagnoses_in_force(items)
    diagnosis = diagnoses[-1] if diagnoses else None
    return [_assessment(item, body, diagnosis) for item, body in of_type(items, ev.Staging)]


def _assessment(
    item: Item, body: ev.Staging, diagnosis: ev.DiagnosisConfirmed | None
) -> Assessment:
    histology = diagnosis.histology if diagnosis else None
    grade = diagnosis.grade if diagnosis else "GX"
    location = diagnosis.tumor_location if diagnosis else "unknown"
    c, t, n, m = body.context, body.t, body.n, body.m
    tnm, group, table, reason = _grouping(c, t, n, m, histology, grade, location)
    return Assessment(
        event_id=item.event_id,
        occurred=body.occurred,
        context=c,
        t=t,
        n=n,
        m=m,
        tnm=tnm,
        stage_group=group,
        system=body.system,
        table=table,
        unknown_reason=reason,
    )


@lru_cache(maxsize=4096)
def _grouping(
    c: str, t: str, n: str, m: str, histology: str | None, grade: str, location: str
) -> tuple[str, str, str | None, str | None]:
    """The TNM text, group, table and unknown reason of one assessment: pure functions of these
    few codes, of which a cohort holds a small set, so each is computed once."""
    return (
        f"{c}{t}{n}{m}",
        stage_group(
            context=c, histology=histology or "", t=t, n=n, m=m, grade=grade, location=location
        ),
        staging_table(c, histology) if histology else None,
        unknown_reason(
            context=c, histology=histology, t=t, n=n, m=m, grade=grade, location=location
        ),
    )


def group_in_force_on(assessments: Sequence[Assessment], day: date) -> Assessment | None:
    """The latest assessment on or before `day` by imputed date (ties: the later one listed)."""
    found: tuple[date, int, Assessment] | None = None
    for index, assessment in enumerate(assessments):
        on = parse_date(assessment.occurred).imputed
        if on <= day and (found is None or (on, index) >= found[:2]):
            found = (on, index, assessment)
    return None if found is None else found[2]


def _at_diagnosis(
    assessments: Sequence[Assessment], diagnoses: Sequence[ev.DiagnosisConfirmed]
) -> Assessment | None:
    if not assessments:
        return None
    if diagnoses:
        diagnosed = parse_date(diagnoses[0].occurred).earliest
        for assessment in assessments:
            if parse_date(assessment.occurred).latest >= diagnosed:
                return assessment
    return assessments[0]


def compute_stage(patient_id: str, history: Sequence[ev.AnyEvent]) -> StageView:
    """The stage view of one patient's stored entries (stream order)."""
    return stage_of(patient_id, in_force(history))


def stage_of(patient_id: str, items: Sequence[Item]) -> StageView:
    """The stage view from the items in force (clinical order)."""
    diagnoses = diagnoses_in_force(items)
    assessments = assessments_in_force(items)
    trend: StageTrend = "insufficient_data"
    compared: tuple[UUID | None, UUID | None] = (None, None)
    if len(assessments) >= 2:
        first, latest = assessments[0], assessments[-1]
        trend = stage_trend(first.stage_group, latest.stage_group)
        compared = (first.event_id, latest.event_id)
    return StageView(
        patient_id=patient_id,
        histology=diagnoses[-1].histology if diagnoses else None,
        current=assessments[-1] if assessments else None,
        at_diagnosis=_at_diagnosis(assessments, diagnoses),
        history=assessments,
        trend=trend,
        trend_from=compared[0],
        trend_to=compared[1],
    )
