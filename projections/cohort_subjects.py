"""Who enters a cohort survival analysis, with which time, status and group labels.

Two sources, one result (a list of `Subject`):

- Current data, default CTC rule, no landmark: the stored read models only (`ol_patients`
  joined with `ol_survival`), one indexed query, no event is decoded.
- `as_of`, a landmark or another CTC rule: each patient's events as the views hold them
  (`ol_events`, recorded up to `as_of`), through the same read-model functions the views use, so
  a group means exactly what the patient's own stage and CTC views say. Slower; reports progress.

Patients missing from the cohort index (never indexed, or erased) are never subjects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args

import numpy as np

from domain import events as ev
from domain.dates import parse as parse_date
from domain.errors import Gone, NotFound
from domain.instants import iso_utc
from domain.synthetic import is_synthetic
from projections import readmodels
from projections.cohort_filters import EQUALITY_NAMES, RANGE_COLUMNS
from projections.ctc import compute_ctc
from projections.effective import in_force
from projections.stage import compute_stage
from projections.survival import compute_survival
from projections.survival_subjects import TABLE
from projections.views import Views, _synthetic_clause, _where

# What a patient can be grouped by: each is a field of the patient's read models.
Grouping = Literal[
    "ctc_trend", "ctc_cleared", "stage_group", "stage_trend", "concordance", "histology"
]
GROUPINGS: tuple[str, ...] = get_args(Grouping)
CTC_GROUPINGS: tuple[str, ...] = ("ctc_trend", "ctc_cleared", "concordance")
# Labels for read-model values that are absent.
NOT_STAGED = "not_staged"
NOT_RECORDED = "not_recorded"
MONTH_DAYS = 30.4375

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Subject:
    """One patient of the recomputing path, before the cohort is made columnar."""

    patient_id: str
    os_days: float
    dead: bool
    approximate: bool
    labels: dict[str, str]  # grouping -> label; also "stage_at_diagnosis"


@dataclass(frozen=True)
class Cohort:
    """The analysed patients as columns (one entry per patient), and who was left out."""

    days: np.ndarray  # float days from time zero (diagnosis, or the landmark)
    dead: np.ndarray  # bool
    approximate: np.ndarray  # bool
    synthetic: np.ndarray  # bool
    labels: np.ndarray  # str: the `by` group
    exposure: np.ndarray  # str: the CTC group the Cox model uses
    stage: np.ndarray  # str: stage group at diagnosis (Cox covariate)
    matched: int  # patients the filters matched
    no_diagnosis: int  # excluded: no diagnosis date
    before_landmark: int  # excluded: died or last seen at or before the landmark

    @classmethod
    def of(
        cls,
        subjects: list[Subject],
        by: str,
        *,
        matched: int,
        no_diagnosis: int,
        before_landmark: int = 0,
    ) -> Cohort:
        exposure = cox_exposure(by)
        return cls(
            days=np.array([s.os_days for s in subjects], dtype=float),
            dead=np.array([s.dead for s in subjects], dtype=bool),
            approximate=np.array([s.approximate for s in subjects], dtype=bool),
            synthetic=np.array([is_synthetic(s.patient_id) for s in subjects], dtype=bool),
            labels=np.array([s.labels[by] for s in subjects], dtype=object),
            exposure=np.array([s.labels[exposure] for s in subjects], dtype=object),
            stage=np.array([s.labels["stage_at_diagnosis"] for s in subjects], dtype=object),
            matched=matched,
            no_diagnosis=no_diagnosis,
            before_landmark=before_landmark,
        )


def cox_exposure(by: str) -> str:
    """The CTC grouping of the Cox model: `by` itself when it is one, else the CTC trend."""
    return by if by in CTC_GROUPINGS else "ctc_trend"


def cleared_label(cleared: bool) -> str:
    return "cleared" if cleared else "not_cleared"


def stage_label(group: str | None) -> str:
    return group or NOT_STAGED


# Each grouping as a column expression over `ol_survival s` joined with `ol_patients p`.
_LABEL_SQL: dict[str, str] = {
    "ctc_trend": "p.ctc_trend",
    "ctc_cleared": "CASE WHEN s.ctc_cleared = 1 THEN 'cleared' ELSE 'not_cleared' END",
    "stage_group": f"COALESCE(s.stage_at_diagnosis, '{NOT_STAGED}')",
    "stage_trend": "s.stage_trend",
    "concordance": "p.concordance",
    "histology": f"COALESCE(p.histology, '{NOT_RECORDED}')",
}


def current_cohort(views: Views, filters: dict[str, Any], by: str) -> Cohort:
    """The fast path: the stored cohort index and survival rows, nothing recomputed."""
    where, params = _where(filters)
    synthetic_params: list[Any] = []
    synthetic = _synthetic_clause(True, synthetic_params)
    sql = (
        f"SELECT s.os_days, s.dead, s.approximate, {_LABEL_SQL[by]}, "
        f"{_LABEL_SQL[cox_exposure(by)]}, {_LABEL_SQL['stage_group']}, p.synthetic "
        f"FROM {TABLE} s JOIN (SELECT patient_id, ctc_trend, concordance, histology, "
        f"CASE WHEN {synthetic} THEN 1 ELSE 0 END AS synthetic "
        f"FROM ol_patients{where}) p ON p.patient_id = s.patient_id"
    )
    views.catch_up()
    with views.db.transaction() as cur:
        cur.execute(sql, [*synthetic_params, *params])
        rows = cur.fetchall()
    if not rows:
        return Cohort.of([], by, matched=0, no_diagnosis=0)
    days, dead, approximate, labels, exposure, stage, synth = zip(*rows, strict=True)
    known = np.array([d is not None for d in days], dtype=bool)
    return Cohort(
        days=np.array([d for d in days if d is not None], dtype=float),
        dead=np.array(dead, dtype=bool)[known],
        approximate=np.array(approximate, dtype=bool)[known],
        synthetic=np.array(synth, dtype=bool)[known],
        labels=np.array(labels, dtype=object)[known],
        exposure=np.array(exposure, dtype=object)[known],
        stage=np.array(stage, dtype=object)[known],
        matched=len(rows),
        no_diagnosis=int((~known).sum()),
        before_landmark=0,
    )


def recomputed_cohort(
    views: Views,
    filters: dict[str, Any],
    by: str,
    *,
    as_of: datetime | None,
    landmark_days: float | None,
    rule: str,
    progress: Progress | None = None,
) -> Cohort:
    """The slow path: each patient's events (as known at `as_of`) through the read models."""
    views.catch_up()
    ids = _candidates(views, filters if as_of is None else {}, as_of)
    subjects: list[Subject] = []
    matched = no_diagnosis = before_landmark = 0
    done = 0
    for pid, history in _histories(views, ids, as_of):
        done += 1
        if progress and (done % 200 == 0 or done == len(ids)):
            progress(done, len(ids))
        if not history:
            continue
        if as_of is not None and not matches(readmodels.cohort_row(pid, history), filters):
            continue
        matched += 1
        survival = compute_survival(pid, history)
        if survival.os_days is None or survival.diagnosis_date is None:
            no_diagnosis += 1
            continue
        days = float(survival.os_days)
        known = history
        if landmark_days is not None:
            if days <= landmark_days:
                before_landmark += 1
                continue
            known = known_by(history, parse_date(survival.diagnosis_date).imputed, landmark_days)
            days -= landmark_days
        stage = compute_stage(pid, known)
        ctc = compute_ctc(pid, known, rule=rule)
        at_dx = stage_label(stage.at_diagnosis.stage_group if stage.at_diagnosis else None)
        subjects.append(
            Subject(
                patient_id=pid,
                os_days=days,
                dead=survival.status == "dead",
                approximate=survival.approximate,
                labels={
                    "ctc_trend": ctc.trend,
                    "ctc_cleared": cleared_label(ctc.cleared),
                    "stage_group": at_dx,
                    "stage_trend": stage.trend,
                    "concordance": ctc.concordance.status,
                    "histology": stage.histology or NOT_RECORDED,
                    "stage_at_diagnosis": at_dx,
                },
            )
        )
    return Cohort.of(
        subjects,
        by,
        matched=matched,
        no_diagnosis=no_diagnosis,
        before_landmark=before_landmark,
    )


def known_by(history: Sequence[ev.AnyEvent], start: date, days: float) -> list[ev.AnyEvent]:
    """The events whose clinical date (as in force) is at most `days` after `start`, with their
    corrections: what the record showed about the patient's course up to that day."""
    keep = {item.event_id for item in in_force(history) if (item.day - start).days <= days}
    return [e for e in history if e.event_id in keep or getattr(e, "target_event_id", None) in keep]


def matches(row: readmodels.PatientRow, filters: dict[str, Any]) -> bool:
    """The cohort index's filters (`Views.patients`) applied to one computed row."""
    for key, value in filters.items():
        if value is None:
            continue
        if key == "synthetic":
            if is_synthetic(row.patient_id) != bool(value):
                return False
        elif key in EQUALITY_NAMES:
            values = value if isinstance(value, list | tuple) else [value]
            if getattr(row, key) not in values:
                return False
        else:
            column, _, bound = key.rpartition("_")
            if column not in RANGE_COLUMNS:
                _where({key: value})  # raises the index's own error for an unknown filter
            have = getattr(row, column)
            if column == "last_recorded_at" and have is not None:
                have, value = iso_utc(have), iso_utc(value)
            if have is None or (have < value if bound == "min" else have > value):
                return False
    return True


def _candidates(views: Views, filters: dict[str, Any], as_of: datetime | None) -> list[str]:
    where, params = _where(filters)
    sql = f"SELECT patient_id FROM ol_patients{where} ORDER BY patient_id"
    if as_of is not None:  # registered by then, and still in the index (never an erased one)
        sql = (
            "SELECT p.patient_id FROM ol_patients p WHERE EXISTS (SELECT 1 FROM ol_events e "
            "WHERE e.patient_id = p.patient_id AND e.recorded_at <= ?) ORDER BY p.patient_id"
        )
        params = [iso_utc(as_of)]
    with views.db.transaction() as cur:
        cur.execute(sql, params)
        return [str(r[0]) for r in cur.fetchall()]


def _histories(
    views: Views, ids: Sequence[str], as_of: datetime | None
) -> Iterator[tuple[str, list[ev.AnyEvent]]]:
    """Each patient's events (recorded up to `as_of`), read from the ledger's stream."""
    for pid in ids:
        try:
            history = views.ledger.history(pid, as_of=as_of)
        except (NotFound, Gone):
            history = []  # erased, or gone from the store since the index was read
        yield pid, history
