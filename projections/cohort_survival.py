"""Overall survival of a cohort by group: Kaplan-Meier, log-rank, stage-adjusted Cox.

What is computed, and how (also stated in every report's `definitions`):

- Kaplan-Meier per group (`projections.km`: lifelines' estimator vectorised, checked against
  it in the tests), times in months = days / 30.4375.
  Pointwise 95 % intervals by the exponential Greenwood formula (log(-log S), lifelines'
  default); the median is the first time S(t) ≤ 0.5, its interval the times the two bands
  cross 0.5; S at 12, 24 and 36 months read off the step function, null past the last follow-up.
- Log-rank across all groups (k - 1 degrees of freedom) and for every pair, pairwise p-values
  adjusted by Holm's step-down method.
- Cox proportional hazards (lifelines `CoxPHFitter`, Efron ties) of survival on the CTC group
  with the stage group at diagnosis as a covariate (patients whose stage at diagnosis is
  unknown left out), hazard ratios with 95 % intervals, the proportional-hazards test on
  scaled Schoenfeld residuals (rank time), and a likelihood-ratio test of what the CTC group
  adds to a model of stage alone.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from domain.errors import ValidationFailed
from projections.cohort_subjects import (
    CTC_GROUPINGS,
    GROUPINGS,
    MONTH_DAYS,
    Cohort,
    Progress,
    current_cohort,
    recomputed_cohort,
)
from projections.ctc import check_rule
from projections.readmodels import STORED_CTC_RULE
from projections.survival_cox import cox_model
from projections.survival_groups import group_estimate, group_order, logrank_all, pairwise_logrank
from projections.survival_report import Counts, SurvivalReport
from projections.views import Views, _where

_GROUP_DEFINITIONS: dict[str, str] = {
    "ctc_trend": "CTC trend of the ctc read model over the draws counted (per 7.5 mL): "
    "decreasing (no step up, last < first), increasing (no step down, last > first), stable "
    "(all equal), fluctuating, insufficient_data (fewer than 2 draws)",
    "ctc_cleared": "cleared: an earlier draw was positive under the CTC rule and the latest is "
    "not; not_cleared: every other patient (fewer than 2 draws included)",
    "stage_group": "AJCC 8 clinical stage group at diagnosis (the stage read model's "
    "`at_diagnosis`: the first assessment on or after the diagnosis date); not_staged: none",
    "stage_trend": "the stage read model's trend, first to latest assessment counted: "
    "improved, worsened, unchanged, insufficient_data (fewer than 2, or an unknown group)",
    "concordance": "the ctc read model's concordance of the CTC trend with the stage trend "
    "over the same draws: concordant, discordant, undetermined",
    "histology": "histology of the diagnosis in force; not_recorded: no diagnosis_confirmed "
    "(diagnosed by biopsy only)",
}


def check_by(by: str) -> str:
    if by not in GROUPINGS:
        raise ValidationFailed(
            f"`by` {by!r} is not a grouping; use one of {', '.join(GROUPINGS)}",
            field="by",
            rule="grouping",
        )
    return by


def check_landmark(months: float | None) -> float | None:
    if months is not None and (not math.isfinite(months) or not 0 <= months <= 600):
        raise ValidationFailed(
            f"`landmark` must be a number of months from 0 to 600, not {months}",
            field="landmark",
            rule="range",
        )
    return months


class Analysis:
    """A finished analysis: the report, and each group's times and deaths (for the plot)."""

    def __init__(
        self, report: SurvivalReport, curves: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        self.report = report
        self.curves = curves  # group -> (months, dead)


def survival_by_group(
    views: Views,
    *,
    by: str,
    filters: dict[str, Any] | None = None,
    rule: str | None = None,
    as_of: datetime | None = None,
    landmark_months: float | None = None,
    with_cox: bool = True,
    progress: Progress | None = None,
) -> Analysis:
    """Kaplan-Meier and friends over the patients the cohort index's `filters` select.

    Current data under the stored CTC rule without a landmark reads the stored read models
    only; anything else recomputes each patient's groups from the events the views hold."""
    check_by(by)
    check_landmark(landmark_months)
    rule = check_rule(rule) if rule is not None else STORED_CTC_RULE
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    _where(filters)  # an unknown filter is refused before any work
    rule_matters = by == "ctc_cleared" and rule != STORED_CTC_RULE
    if as_of is None and landmark_months is None and not rule_matters:
        cohort = current_cohort(views, filters, by)
    else:
        cohort = recomputed_cohort(
            views,
            filters,
            by,
            as_of=as_of,
            landmark_days=None if landmark_months is None else landmark_months * MONTH_DAYS,
            rule=rule,
            progress=progress,
        )
    return analyse(
        cohort, by=by, rule=rule, as_of=as_of, landmark_months=landmark_months, with_cox=with_cox
    )


def analyse(
    cohort: Cohort,
    *,
    by: str,
    rule: str,
    as_of: datetime | None,
    landmark_months: float | None,
    with_cox: bool = True,
) -> Analysis:
    check_by(by)
    months = cohort.days / MONTH_DAYS
    order = group_order(by, list(set(cohort.labels.tolist())))
    members = {name: cohort.labels == name for name in order}
    groups = [
        group_estimate(name, months[m], cohort.dead[m], cohort.approximate[m])
        for name, m in members.items()
    ]
    analysed = len(months)
    report_warnings: list[str] = []
    if not analysed:
        report_warnings.append(
            "no patient to analyse: "
            + (
                "no patient matches the filters"
                if cohort.matched == 0
                else "every matching patient was excluded (see `patients`)"
            )
        )
    synthetic = int(cohort.synthetic.sum())
    if synthetic and synthetic < analysed:
        report_warnings.append(
            f"{synthetic} of {analysed} patients are synthetic (SYN-/DEMO- ids): "
            "filter with synthetic=false for real patients only"
        )
    elif synthetic:
        report_warnings.append("every patient analysed is synthetic (SYN-/DEMO- ids)")
    if landmark_months is None and by in (*CTC_GROUPINGS, "stage_trend"):
        report_warnings.append(
            "no landmark: a trajectory needs two observations, so grouping from diagnosis "
            "favours patients who lived long enough to have them (immortal-time bias); "
            "use a landmark"
        )
    events = int(cohort.dead.sum())
    return Analysis(
        SurvivalReport(
            by=by,
            rule=rule,
            as_of=as_of,
            landmark_months=landmark_months,
            empty=not analysed,
            definitions=definitions(by, rule=rule, as_of=as_of, landmark_months=landmark_months),
            patients=Counts(
                matched=cohort.matched,
                excluded_no_diagnosis_date=cohort.no_diagnosis,
                excluded_before_landmark=cohort.before_landmark,
                analysed=analysed,
                events=events,
                censored=analysed - events,
                approximate_times=int(cohort.approximate.sum()),
                synthetic=synthetic,
            ),
            groups=groups,
            logrank=logrank_all(months, cohort.dead, cohort.labels),
            pairwise=pairwise_logrank(months, cohort.dead, members),
            cox=cox_model(cohort, months, by) if with_cox else None,
            warnings=report_warnings,
        ),
        {name: (months[m], cohort.dead[m]) for name, m in members.items()},
    )


def definitions(
    by: str, *, rule: str, as_of: datetime | None, landmark_months: float | None
) -> dict[str, str]:
    if landmark_months is None:
        landmark = (
            "none used: time zero is the diagnosis date and each patient is grouped by all "
            "data recorded (see warnings on immortal-time bias)"
        )
        zero = (
            "the diagnosis date of the survival read model: the first diagnosis_confirmed in "
            "force, else the first malignant biopsy"
        )
    else:
        landmark = (
            f"{landmark_months:g} months ({landmark_months * MONTH_DAYS:g} days) after "
            "diagnosis: each patient is grouped by the events dated up to that day, only "
            "patients alive and followed beyond it are kept, and the clock starts there"
        )
        zero = f"the landmark, {landmark_months:g} months after the diagnosis date"
    return {
        "grouping": _GROUP_DEFINITIONS[by],
        "time_zero": zero,
        "time": "exact days between imputed days (os_days of the survival read model), "
        "reported in months = days / 30.4375; never the rounded os_months",
        "event": "death (an in-force death event)",
        "censoring": "patients without a death are censored at their last known contact: the "
        "latest clinical event in force (lost_to_follow_up included)",
        "exclusion": "patients without a diagnosis date have no survival time and are "
        "excluded, counted in patients.excluded_no_diagnosis_date",
        "partial_dates": "imputed as the survival read model does (YYYY-MM as the 15th, YYYY "
        "as 1 July); patients.approximate_times counts patients whose time rests on a partial "
        "or estimated date",
        "landmark": landmark,
        "ci_method": "95 % pointwise intervals by the exponential Greenwood formula on "
        "log(-log S) (lifelines' default); z = 1.96",
        "median": "the first time S(t) <= 0.5 (null: not reached); its 95 % interval is where "
        "the lower and the upper band first reach 0.5 (null upper: not reached)",
        "survival_at": "S(t) at 12, 24 and 36 months from the step function; null when the "
        "group's follow-up ends before t with S > 0",
        "logrank": "log-rank test of equal survival across all groups (df = groups - 1); "
        "pairwise log-rank p-values adjusted for multiplicity by Holm's method",
        "cox": "Cox proportional hazards of survival on the CTC group (the `by` grouping when "
        "it is ctc_trend, ctc_cleared or concordance, else ctc_trend) with the stage group at "
        "diagnosis as covariate, Efron ties; patients with an unknown stage at diagnosis left "
        "out; reference levels: the largest CTC group and the earliest stage; proportional "
        "hazards tested on scaled Schoenfeld residuals against rank time (p < 0.05 flags a "
        "violation); lr_test_ctc_added compares with the model of stage alone",
        "ctc_rule": f"{rule}: positive at >= {rule[2:]} CTCs per 7.5 mL (affects ctc_cleared only)",
        "as_of": "current data" if as_of is None else f"as recorded up to {as_of.isoformat()}",
        "synthetic": "patients with SYN- or DEMO- ids are synthetic; patients.synthetic counts "
        "them (filter synthetic=false to leave them out)",
    }
