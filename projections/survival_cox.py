"""The stage-adjusted Cox model of survival on the CTC group, with its proportional-hazards
check and the likelihood-ratio test of what the CTC group adds."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import proportional_hazard_test
from scipy.stats import chi2

from domain.staging import stage_rank
from projections.cohort_subjects import (
    Cohort,
    cox_exposure,
)
from projections.survival_groups import group_order
from projections.survival_report import Cox, HazardRatio, LogRank, PhCheck, finite

PH_SAMPLE = 20_000


def cox_model(cohort: Cohort, months: np.ndarray, by: str) -> Cox:
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
            hazard_ratio=finite(summary.loc[term, "exp(coef)"]),
            ci95=(
                finite(summary.loc[term, "exp(coef) lower 95%"]),
                finite(summary.loc[term, "exp(coef) upper 95%"]),
            ),
            p=finite(summary.loc[term, "p"]),
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
            finite(stage_only.concordance_index_) if stage_only is not None else None
        ),
        concordance_with_ctc=finite(full.concordance_index_),
        lr_test_ctc_added=LogRank(
            statistic=finite(lr), df=ctc_terms, p=finite(chi2.sf(max(lr, 0.0), ctc_terms))
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
