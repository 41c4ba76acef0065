"""Per group: Kaplan-Meier with its median and milestones; across groups: log-rank, pairwise
log-rank adjusted by Holm's method."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import numpy as np

from domain import events as ev
from domain.staging import STAGE_ORDER
from projections.cohort_subjects import (
    NOT_RECORDED,
    NOT_STAGED,
)
from projections.ctc import ConcordanceStatus, CtcTrend
from projections.km import kaplan_meier, logrank
from projections.stage import StageTrend
from projections.survival_report import (
    CurvePoint,
    Estimate,
    Group,
    LogRank,
    Milestone,
    Pairwise,
    finite,
)

MILESTONES: tuple[int, ...] = (12, 24, 36)
SMALL_GROUP = 5

GROUP_ORDER: dict[str, tuple[str, ...]] = {
    "ctc_trend": get_args(CtcTrend),
    "ctc_cleared": ("cleared", "not_cleared"),
    "stage_trend": get_args(StageTrend),
    "concordance": get_args(ConcordanceStatus),
    "histology": (*get_args(ev.Histology), NOT_RECORDED),
}


def group_order(by: str, labels: Sequence[str]) -> list[str]:
    """Known values in their vocabulary's order (stage groups by `STAGE_ORDER`), then any other
    value the read models produced, alphabetically, and absent values last."""
    present = set(labels)
    known = STAGE_ORDER if by == "stage_group" else GROUP_ORDER.get(by, ())
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


def group_estimate(
    name: str, months: np.ndarray, dead: np.ndarray, approximate: np.ndarray
) -> Group:
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


def logrank_all(months: np.ndarray, dead: np.ndarray, labels: np.ndarray) -> LogRank:
    if len(set(labels.tolist())) < 2:
        return LogRank(statistic=None, df=None, p=None, note="fewer than two groups to compare")
    if not dead.any():
        return LogRank(statistic=None, df=None, p=None, note="no deaths: nothing to compare")
    statistic, df, p = logrank(months, dead, labels)
    return LogRank(statistic=finite(statistic), df=df, p=finite(p))


def pairwise_logrank(
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
            statistic=finite(stat),
            p=finite(p),
            p_holm=finite(adj) if finite(p) is not None else None,
        )
        for (pair, stat, p), adj in zip(raw, adjusted, strict=True)
    ]
