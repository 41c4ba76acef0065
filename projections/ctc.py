"""The **ctc** read model (SPEC §4): CTC draws normalised to 7.5 mL, their trend, and whether
that trend agrees with the stage over the same months.

The stage side compares the assessment in force at the first draw with the one in force at the
last draw (SPEC §4), on the one scale of every stage trend (`projections.stage`);
`stage_from` and `stage_to` name the two assessments compared.

Normalised values are computed exactly, as fractions of the blood volume as written (7.4 mL is
37/5, not the nearest binary float), so equal concentrations compare equal and a value on a
rule's threshold is positive. Trend, positivity and concordance use these exact values; the
view shows them rounded to 2 decimals (`change_pct` to 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise
from typing import Literal, get_args
from uuid import UUID

import msgspec

from domain import events as ev
from domain.dates import parse as parse_date
from domain.errors import ValidationFailed
from domain.staging import stage_rank
from projections.effective import Item, in_force, of_type
from projections.stage import (
    Assessment,
    StageTrend,
    assessments_in_force,
    group_in_force_on,
    stage_trend,
)

RuleName = Literal["ge1", "ge3", "ge5"]
# The one list of positivity rules (CTCs per 7.5 mL at or above the threshold is positive);
# RuleName is the same names for typed parameters (the API's query schema).
RULES: dict[str, int] = {"ge1": 1, "ge3": 3, "ge5": 5}
assert set(RULES) == set(get_args(RuleName)), "RuleName must name exactly the RULES"
RULE_ENV = "ONCOLEDGER_CTC_RULE"
DEFAULT_RULE = "ge1"

CtcTrend = Literal["decreasing", "increasing", "stable", "fluctuating", "insufficient_data"]
ConcordanceStatus = Literal["concordant", "discordant", "undetermined"]

_CONCORDANT: frozenset[tuple[str, str]] = frozenset(
    {("decreasing", "improved"), ("increasing", "worsened"), ("stable", "unchanged")}
)
_STANDARD_ML = Fraction(15, 2)


class Draw(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    occurred: str
    count: int
    blood_volume_ml: float
    per_7_5_ml: float
    change: float | None
    change_pct: float | None
    positive: bool


class Concordance(msgspec.Struct, frozen=True, kw_only=True):
    status: ConcordanceStatus
    ctc_trend: CtcTrend
    stage_trend: StageTrend
    summary: str
    stage_from: UUID | None = None
    stage_to: UUID | None = None


class CtcView(msgspec.Struct, frozen=True, kw_only=True):
    patient_id: str
    rule: str
    draws: list[Draw]
    trend: CtcTrend
    latest_per_7_5_ml: float | None
    cleared: bool
    concordance: Concordance


def check_rule(name: str, *, source: str = "rule") -> str:
    if name not in RULES:
        raise ValidationFailed(
            f"`{source}` {name!r} is not a CTC positivity rule; valid rules: {', '.join(RULES)}",
            field="rule",
            rule="ctc_rule",
        )
    return name


def default_rule() -> str:
    """The positivity rule named by ONCOLEDGER_CTC_RULE (unset or empty: ge1)."""
    return check_rule(os.environ.get(RULE_ENV) or DEFAULT_RULE, source=RULE_ENV)


@lru_cache(maxsize=65536, typed=True)
def per_7_5_ml(count: int, blood_volume_ml: float) -> Fraction:
    """CTCs per 7.5 mL of blood, exact; the volume is read as the decimal it was written as.

    Draws repeat few (count, volume) pairs, and a Fraction parsed from text and divided costs
    more than the rest of a draw's fold: the value of a pair is computed once (the same
    exact value; Fractions are immutable)."""
    try:
        return _per_7_5_ml(count, blood_volume_ml)
    except TypeError:  # an unhashable argument (never decoded from an event): computed as is
        return _per_7_5_ml.__wrapped__(count, blood_volume_ml)


@lru_cache(maxsize=65536, typed=True)
def _per_7_5_ml(count: int, blood_volume_ml: float) -> Fraction:
    return count * _STANDARD_ML / Fraction(repr(blood_volume_ml))


def ctc_trend(values: Sequence[Fraction]) -> CtcTrend:
    if len(values) < 2:
        return "insufficient_data"
    steps = [later - earlier for earlier, later in pairwise(values)]
    first, last = values[0], values[-1]
    if all(step <= 0 for step in steps) and last < first:
        return "decreasing"
    if all(step >= 0 for step in steps) and last > first:
        return "increasing"
    if all(step == 0 for step in steps):
        return "stable"
    return "fluctuating"


def compute_ctc(
    patient_id: str, history: Sequence[ev.AnyEvent], rule: str | None = None
) -> CtcView:
    """The CTC view of one patient's stored entries (stream order) under a positivity rule."""
    return ctc_of(patient_id, in_force(history), rule=rule)


def ctc_of(patient_id: str, items: Sequence[Item], rule: str | None = None) -> CtcView:
    """The CTC view from the items in force (clinical order)."""
    rule = default_rule() if rule is None else check_rule(rule)
    threshold = RULES[rule]
    values: list[Fraction] = []
    draws: list[Draw] = []
    for item, body in of_type(items, ev.CtcCount):
        value = per_7_5_ml(body.count, body.blood_volume_ml)
        previous = values[-1] if values else None
        draws.append(
            Draw(
                event_id=item.event_id,
                occurred=body.occurred,
                count=body.count,
                blood_volume_ml=body.blood_volume_ml,
                per_7_5_ml=_round(value, 2),
                change=None if previous is None else _round(value - previous, 2),
                change_pct=(
                    None if not previous else _round((value - previous) / previous * 100, 1)
                ),
                positive=value >= threshold,
            )
        )
        values.append(value)
    trend = ctc_trend(values)
    return CtcView(
        patient_id=patient_id,
        rule=rule,
        draws=draws,
        trend=trend,
        latest_per_7_5_ml=draws[-1].per_7_5_ml if draws else None,
        cleared=bool(draws) and any(d.positive for d in draws[:-1]) and not draws[-1].positive,
        concordance=_concordance(draws, values, trend, assessments_in_force(items)),
    )


def _concordance(
    draws: Sequence[Draw],
    values: Sequence[Fraction],
    trend: CtcTrend,
    assessments: Sequence[Assessment],
) -> Concordance:
    start, end = (None, None)
    if len(draws) >= 2:
        start, end = stage_window(_day(draws[0].occurred), _day(draws[-1].occurred), assessments)
    staged: StageTrend = "insufficient_data"
    if start is not None and end is not None:
        staged = stage_trend(start.stage_group, end.stage_group)
    status: ConcordanceStatus = "undetermined"
    if trend not in ("insufficient_data", "fluctuating") and staged != "insufficient_data":
        status = "concordant" if (trend, staged) in _CONCORDANT else "discordant"
    return Concordance(
        status=status,
        ctc_trend=trend,
        stage_trend=staged,
        summary=_summary(status, trend, staged, values, start, end, has_staging=bool(assessments)),
        stage_from=start.event_id if start is not None and end is not None else None,
        stage_to=end.event_id if start is not None and end is not None else None,
    )


def stage_window(
    first_day: date, last_day: date, assessments: Sequence[Assessment]
) -> tuple[Assessment | None, Assessment | None]:
    """The assessments in force at the first and at the last draw (SPEC §4)."""
    if not assessments:
        return None, None
    start = group_in_force_on(assessments, first_day)
    if start is None:  # none before the first draw: the first assessment in the window
        start = next(
            (a for a in assessments if first_day <= _day(a.occurred) <= last_day),
            None,
        )
    return start, group_in_force_on(assessments, last_day)


def _summary(
    status: ConcordanceStatus,
    trend: CtcTrend,
    staged: StageTrend,
    values: Sequence[Fraction],
    start: Assessment | None,
    end: Assessment | None,
    *,
    has_staging: bool,
) -> str:
    if not values:
        return "No CTC draws recorded, so nothing to compare with the stage"
    if len(values) == 1:
        return "Not enough CTC draws to compare with the stage (1 draw)"
    ctc = f"CTC count {trend} ({_values_text(trend, values)} per 7.5 mL)"
    if start is None or end is None:
        if not has_staging:
            return f"{ctc}; no staging recorded to compare with"
        return f"{ctc}; no staging on or before the last draw to compare with"
    if staged == "insufficient_data":
        unknown = [
            (name, a)
            for name, a in (("first", start), ("last", end))
            if stage_rank(a.stage_group) is None
        ]
        at = "both draws" if len(unknown) == 2 else f"the {unknown[0][0]} draw"
        return f"{ctc}; the {_stage_name(*(a for _, a in unknown))} group is unknown at {at}"
    stage = f"{_stage_name(start, end)} {staged} ({_groups_text(staged, start, end)})"
    if status == "undetermined":  # fluctuating CTC
        return f"{ctc}, no single direction to compare with {stage}"
    joiner = "and" if status == "concordant" else "while"
    return f"{ctc} {joiner} {stage}"


_CONTEXT_NAMES: dict[str, str] = {
    "c": "clinical",
    "p": "pathological",
    "yc": "post-therapy clinical",
    "yp": "post-therapy pathological",
    "r": "recurrence",
}


def _stage_name(*assessments: Assessment) -> str:
    """ "clinical stage" when every assessment named is of one context, else "stage"."""
    contexts = {a.context for a in assessments}
    return f"{_CONTEXT_NAMES[contexts.pop()]} stage" if len(contexts) == 1 else "stage"


def _groups_text(staged: StageTrend, start: Assessment, end: Assessment) -> str:
    """IVB, IVA → III, or with the contexts when they differ: cIII → ypI."""
    if start.context != end.context:
        return f"{start.context}{start.stage_group} → {end.context}{end.stage_group}"
    if staged == "unchanged" and start.stage_group == end.stage_group:
        return start.stage_group
    return f"{start.stage_group} → {end.stage_group}"


def _values_text(trend: CtcTrend, values: Sequence[Fraction]) -> str:
    if trend == "stable":
        return format_number(values[0])
    if trend == "fluctuating":
        shown = list(values) if len(values) <= 5 else [values[0], values[-1]]
        return (" → " if len(values) <= 5 else " → … → ").join(map(format_number, shown))
    return f"{format_number(values[0])} → {format_number(values[-1])}"


def format_number(value: Fraction | float) -> str:
    """At most 2 decimals, no trailing zeros: 4, 2.5, 3.04."""
    return f"{_round(value, 2):.2f}".rstrip("0").rstrip(".")


def _round(value: Fraction | float, digits: int) -> float:
    return round(float(value), digits)


def _day(occurred: str) -> date:
    return parse_date(occurred).imputed
