"""The shape of a cohort survival report (`GET /api/v1/cohort/survival`, `cohort survival
--json`): groups with their estimates, log-rank tests, the Cox model, counts."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec


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


def finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
