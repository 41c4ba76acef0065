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
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args

import msgspec
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import proportional_hazard_test
from scipy.stats import chi2

from domain import events as ev
from domain.errors import ValidationFailed
from domain.staging import STAGE_ORDER, stage_rank
from projections.cohort_subjects import (
    CTC_GROUPINGS,
    GROUPINGS,
    MONTH_DAYS,
    NOT_RECORDED,
    NOT_STAGED,
    Cohort,
    Progress,
    cox_exposure,
    current_cohort,
    recomputed_cohort,
)
from projections.ctc import ConcordanceStatus, CtcTrend, check_rule
from projections.km import kaplan_meier, logrank
from projections.readmodels import STORED_CTC_RULE
from projections.stage import StageTrend
from projections.views import Views, _where

MILESTONES: tuple[int, ...] = (12, 24, 36)
SMALL_GROUP = 5
PH_SAMPLE = 20_000

_ORDER: dict[str, tuple[str, ...]] = {
    "ctc_trend": get_args(CtcTrend),
    "ctc_cleared": ("cleared", "not_cleared"),
    "stage_trend": get_args(StageTrend),
    "concordance": get_args(ConcordanceStatus),
    "histology": (*get_args(ev.Histology), NOT_RECORDED),
}

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


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    estimate: float | None
    ci95: tuple[float | None, float | None]


class Milestone(msgspec.Struct, frozen=True, kw_only=True):
    months: int
    estimate: float | None
    ci95: tuple[float | None, float | None]


class CurvePoint(msgspec.Struct, frozen=True, kw_only=True):
    months: float
    survival: float
    ci95: tuple[float, float]
    at_risk: int
    events: int
    censored: int


class Group(msgspec.Struct, frozen=True, kw_only=True):
    group: str
    n: int
    events: int
    censored: int
    approximate: int
    median_months: Estimate
    survival: list[Milestone]
    curve: list[CurvePoint]
    warnings: list[str]


class LogRank(msgspec.Struct, frozen=True, kw_only=True):
    statistic: float | None
    df: int | None
    p: float | None
    note: str | None = None


class Pairwise(msgspec.Struct, frozen=True, kw_only=True):
    groups: tuple[str, str]
    statistic: float | None
    p: float | None
    p_holm: float | None


class HazardRatio(msgspec.Struct, frozen=True, kw_only=True):
    term: str
    variable: str
    level: str
    reference: str
    hazard_ratio: float | None
    ci95: tuple[float | None, float | None]
    p: float | None


class PhCheck(msgspec.Struct, frozen=True, kw_only=True):
    term: str
    statistic: float
    p: float


class Cox(msgspec.Struct, frozen=True, kw_only=True):
    exposure: str
    covariate: str
    n: int
    events: int
    excluded_unknown_stage: int
    hazard_ratios: list[HazardRatio]
    proportional_hazards: list[PhCheck]
    proportional_hazards_ok: bool | None
    proportional_hazards_note: str | None
    concordance_stage_only: float | None
    concordance_with_ctc: float | None
    lr_test_ctc_added: LogRank
    warnings: list[str]
    note: str | None = None


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    matched: int
    excluded_no_diagnosis_date: int
    excluded_before_landmark: int
    analysed: int
    events: int
    censored: int
    approximate_times: int
    synthetic: int


class SurvivalReport(msgspec.Struct, frozen=True, kw_only=True):
    by: str
    rule: str
    as_of: datetime | None
    landmark_months: float | None
    empty: bool
    definitions: dict[str, str]
    patients: Counts
    groups: list[Group]
    logrank: LogRank
    pairwise: list[Pairwise]
    cox: Cox | None
    warnings: list[str]


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


def group_order(by: str, labels: Sequence[str]) -> list[str]:
    """Known values in their vocabulary's order (stage groups by `STAGE_ORDER`), then any other
    value the read models produced, alphabetically, and absent values last."""
    present = set(labels)
    known = STAGE_ORDER if by == "stage_group" else _ORDER.get(by, ())
    first = [g for g in known if g in present]
    absent = [g for g in (NOT_STAGED, NOT_RECORDED) if g in present and g not in first]
    rest = sorted(present - set(first) - set(absent))
    return first + rest + absent


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i + 1), kept
    monotone and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


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
        _group(name, months[m], cohort.dead[m], cohort.approximate[m])
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
            logrank=_logrank(months, cohort.dead, cohort.labels),
            pairwise=_pairwise(months, cohort.dead, members),
            cox=_cox(cohort, months, by) if with_cox else None,
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


def _num(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _group(name: str, months: np.ndarray, dead: np.ndarray, approximate: np.ndarray) -> Group:
    n = len(months)
    notes: list[str] = []
    if n == 1:
        notes.append(
            "one patient: the curve is that patient's course, intervals are not informative"
        )
    elif n < SMALL_GROUP:
        notes.append(f"only {n} patients: estimates are very uncertain")
    table = kaplan_meier(months, dead)
    times, estimate, lower, upper = table.times, table.survival, table.lower, table.upper
    curve = [
        CurvePoint(
            months=t, survival=s, ci95=(lo, hi), at_risk=int(r), events=int(e), censored=int(c)
        )
        for t, s, lo, hi, r, e, c in zip(
            times.tolist(),
            estimate.tolist(),
            lower.tolist(),
            upper.tolist(),
            table.at_risk.tolist(),
            table.events.tolist(),
            table.censored.tolist(),
            strict=True,
        )
    ]
    last = float(months.max())
    milestones = []
    for m in MILESTONES:
        i = int(np.searchsorted(times, m, side="right")) - 1
        known = m <= last or estimate[i] == 0
        milestones.append(
            Milestone(
                months=m,
                estimate=float(estimate[i]) if known else None,
                ci95=(float(lower[i]), float(upper[i])) if known else (None, None),
            )
        )
    return Group(
        group=name,
        n=n,
        events=int(dead.sum()),
        censored=int((~dead).sum()),
        approximate=int(approximate.sum()),
        median_months=Estimate(
            estimate=_first_at_or_below(times, estimate),
            ci95=(_first_at_or_below(times, lower), _first_at_or_below(times, upper)),
        ),
        survival=milestones,
        curve=curve,
        warnings=notes,
    )


def _first_at_or_below(times: np.ndarray, values: np.ndarray, q: float = 0.5) -> float | None:
    below = np.nonzero(values <= q)[0]
    return float(times[below[0]]) if len(below) else None


def _logrank(months: np.ndarray, dead: np.ndarray, labels: np.ndarray) -> LogRank:
    if len(set(labels.tolist())) < 2:
        return LogRank(statistic=None, df=None, p=None, note="fewer than two groups to compare")
    if not dead.any():
        return LogRank(statistic=None, df=None, p=None, note="no deaths: nothing to compare")
    statistic, df, p = logrank(months, dead, labels)
    return LogRank(statistic=_num(statistic), df=df, p=_num(p))


def _pairwise(
    months: np.ndarray, dead: np.ndarray, members: dict[str, np.ndarray]
) -> list[Pairwise]:
    names = list(members)
    raw: list[tuple[tuple[str, str], float, float]] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = members[a] | members[b]
            if not dead[both].any():
                continue
            statistic, _, p = logrank(months[both], dead[both], members[a][both])
            raw.append(((a, b), statistic, p))
    adjusted = holm([p if math.isfinite(p) else 1.0 for _, _, p in raw])
    return [
        Pairwise(
            groups=pair,
            statistic=_num(stat),
            p=_num(p),
            p_holm=_num(adj) if _num(p) is not None else None,
        )
        for (pair, stat, p), adj in zip(raw, adjusted, strict=True)
    ]


def _cox(cohort: Cohort, months: np.ndarray, by: str) -> Cox:
    exposure = cox_exposure(by)
    known = np.array([stage_rank(s) is not None for s in cohort.stage.tolist()], dtype=bool)
    ctc, stage, dead, months = (
        cohort.exposure[known],
        cohort.stage[known],
        cohort.dead[known],
        months[known],
    )
    staged, events = int(known.sum()), int(dead.sum())

    def empty(note: str) -> Cox:
        return Cox(
            exposure=exposure, covariate="stage_at_diagnosis", n=staged, events=events,
            excluded_unknown_stage=len(known) - staged, hazard_ratios=[],
            proportional_hazards=[], proportional_hazards_ok=None,
            proportional_hazards_note=None, concordance_stage_only=None,
            concordance_with_ctc=None, lr_test_ctc_added=LogRank(statistic=None, df=None, p=None),
            warnings=[], note=note,
        )  # fmt: skip

    ctc_levels = group_order(exposure, list(set(ctc.tolist())))
    stage_levels = group_order("stage_group", list(set(stage.tolist())))
    if len(ctc_levels) < 2:
        return empty("fewer than two CTC groups among patients with a known stage at diagnosis")
    if events < 2:
        return empty("fewer than two deaths among patients with a known stage at diagnosis")
    ctc_ref = max(ctc_levels, key=lambda g: int((ctc == g).sum()))
    stage_ref = stage_levels[0]
    frame: dict[str, Any] = {"months": months, "dead": dead.astype(int)}
    terms: dict[str, tuple[str, str, str]] = {}
    for variable, values, levels, ref in (
        (exposure, ctc, ctc_levels, ctc_ref),
        ("stage_at_diagnosis", stage, stage_levels, stage_ref),
    ):
        for level in levels:
            if level != ref:
                term = f"{variable}={level}"
                frame[term] = (values == level).astype(float)
                terms[term] = (variable, level, ref)
    data = pd.DataFrame(frame)
    stage_terms = [t for t, (v, _, _) in terms.items() if v == "stage_at_diagnosis"]
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            full = CoxPHFitter().fit(data, duration_col="months", event_col="dead")
            stage_only = None
            if stage_terms:
                stage_only = CoxPHFitter().fit(
                    data[["months", "dead", *stage_terms]], duration_col="months", event_col="dead"
                )
            ll_stage = stage_only.log_likelihood_ if stage_only else _null_loglik(data)
        caught = sorted({str(w.message).splitlines()[0] for w in seen if _relevant(w.message)})
    except Exception as exc:  # lifelines raises on degenerate designs (e.g. a group without deaths)
        return empty(f"the Cox model could not be fitted: {str(exc).splitlines()[0]}")
    checks, ph_note = _ph_test(full, data)
    summary = full.summary
    ratios = [
        HazardRatio(
            term=term,
            variable=variable,
            level=level,
            reference=ref,
            hazard_ratio=_num(summary.loc[term, "exp(coef)"]),
            ci95=(
                _num(summary.loc[term, "exp(coef) lower 95%"]),
                _num(summary.loc[term, "exp(coef) upper 95%"]),
            ),
            p=_num(summary.loc[term, "p"]),
        )
        for term, (variable, level, ref) in terms.items()
    ]
    ctc_terms = len(terms) - len(stage_terms)
    lr = 2 * (full.log_likelihood_ - ll_stage)
    return Cox(
        exposure=exposure,
        covariate="stage_at_diagnosis",
        n=staged,
        events=events,
        excluded_unknown_stage=len(known) - staged,
        hazard_ratios=ratios,
        proportional_hazards=checks,
        proportional_hazards_ok=all(c.p >= 0.05 for c in checks) if checks else None,
        proportional_hazards_note=ph_note,
        concordance_stage_only=(
            _num(stage_only.concordance_index_) if stage_only is not None else None
        ),
        concordance_with_ctc=_num(full.concordance_index_),
        lr_test_ctc_added=LogRank(
            statistic=_num(lr), df=ctc_terms, p=_num(chi2.sf(max(lr, 0.0), ctc_terms))
        ),
        warnings=caught,
    )


def _ph_test(model: CoxPHFitter, data: pd.DataFrame) -> tuple[list[PhCheck], str | None]:
    """The Grambsch-Therneau test on scaled Schoenfeld residuals (rank time). lifelines'
    residuals cost grows with the square of the patients, so beyond PH_SAMPLE the test runs on
    the model refitted to a seeded random sample of that size, and says so."""
    note = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(data) > PH_SAMPLE:
                data = data.sample(PH_SAMPLE, random_state=15)
                model = CoxPHFitter().fit(data, duration_col="months", event_col="dead")
                note = (
                    f"tested on a seeded random sample of {PH_SAMPLE:,} patients (the "
                    "residuals' cost grows with the square of the cohort)"
                )
            result = proportional_hazard_test(model, data, time_transform="rank")
    except Exception as exc:  # a level absent from the sample, a singular design
        return [], f"not computed: {str(exc).splitlines()[0]}"
    checks = [
        PhCheck(term=str(term), statistic=float(row["test_statistic"]), p=float(row["p"]))
        for term, row in result.summary.iterrows()
    ]
    return checks, note


def _relevant(message: Warning | str) -> bool:
    text = str(message)
    return "convergence" in text.lower() or "overflow" in text.lower() or "variance" in text.lower()


def _null_loglik(data: pd.DataFrame) -> float:
    """The Cox partial log-likelihood with no covariate (Efron ties): stage alone has no term
    when every patient has the same stage."""
    fitter = CoxPHFitter().fit(data[["months", "dead"]], duration_col="months", event_col="dead")
    return float(fitter.log_likelihood_)
