"""The cohort index's filters as query parameters: one dependency for every cohort route
(`GET /api/v1/patients`, `GET /api/v1/cohort/survival`), so they cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar.params import QueryParameter

from api.params import MAX_BIGINT, utc
from domain import events as ev
from projections.ctc import ConcordanceStatus as Concordance
from projections.ctc import CtcTrend

SurvivalStatus = Literal["alive", "dead", "unknown"]
# Bounds keep every value storable (BIGINT) and finite; the columns hold nothing beyond them.
_YEARS: dict[str, float] = {"ge": 1850, "le": 2200}
_COUNTS: dict[str, float] = {"ge": 0, "le": MAX_BIGINT}
_AMOUNTS: dict[str, float] = {"ge": 0, "le": 1e12}


def _any_of(what: str) -> QueryParameter:
    return QueryParameter(description=f"Only patients whose {what} is one of these (repeatable)")


def _bound(
    what: str, bound: str, *, ge: float | None = None, le: float | None = None
) -> QueryParameter:
    return QueryParameter(ge=ge, le=le, description=f"Only patients whose {what} is {bound} this")


def cohort_filters(
    sex: Annotated[list[ev.Sex] | None, _any_of("sex")] = None,
    histology: Annotated[list[ev.Histology] | None, _any_of("histology")] = None,
    primary_site: Annotated[list[str] | None, _any_of("primary site")] = None,
    stage_group: Annotated[
        list[str] | None, _any_of("current stage group (e.g. IVB, unknown)")
    ] = None,
    ctc_trend: Annotated[list[CtcTrend] | None, _any_of("CTC trend")] = None,
    concordance: Annotated[list[Concordance] | None, _any_of("CTC/stage concordance")] = None,
    survival_status: Annotated[list[SurvivalStatus] | None, _any_of("survival status")] = None,
    status: Annotated[
        list[SurvivalStatus] | None, _any_of("survival status (same as survival_status)")
    ] = None,
    birth_year_min: Annotated[int | None, _bound("birth year", "at least", **_YEARS)] = None,
    birth_year_max: Annotated[int | None, _bound("birth year", "at most", **_YEARS)] = None,
    ctc_latest_per_7_5_ml_min: Annotated[
        float | None, _bound("latest CTC per 7.5 mL", "at least", **_AMOUNTS)
    ] = None,
    ctc_latest_per_7_5_ml_max: Annotated[
        float | None, _bound("latest CTC per 7.5 mL", "at most", **_AMOUNTS)
    ] = None,
    os_months_min: Annotated[
        float | None, _bound("overall survival in months", "at least", **_AMOUNTS)
    ] = (None),
    os_months_max: Annotated[
        float | None, _bound("overall survival in months", "at most", **_AMOUNTS)
    ] = (None),
    events_min: Annotated[int | None, _bound("number of events", "at least", **_COUNTS)] = None,
    events_max: Annotated[int | None, _bound("number of events", "at most", **_COUNTS)] = None,
    last_recorded_at_min: Annotated[
        datetime | None, _bound("last recording time", "at or after")
    ] = None,
    last_recorded_at_max: Annotated[
        datetime | None, _bound("last recording time", "at or before")
    ] = None,
    synthetic: Annotated[
        bool | None,
        QueryParameter(
            description="true: only synthetic patients (SYN-/DEMO- ids); false: only real "
            "ones; absent: both"
        ),
    ] = None,
) -> dict[str, Any]:
    """The filters given, as the service layer takes them (absent ones left out)."""
    filters: dict[str, Any] = {
        "sex": sex,
        "histology": histology,
        "primary_site": primary_site,
        "stage_group": stage_group,
        "ctc_trend": ctc_trend,
        "concordance": concordance,
        "survival_status": (survival_status or []) + (status or []) or None,
        "birth_year_min": birth_year_min,
        "birth_year_max": birth_year_max,
        "ctc_latest_per_7_5_ml_min": ctc_latest_per_7_5_ml_min,
        "ctc_latest_per_7_5_ml_max": ctc_latest_per_7_5_ml_max,
        "os_months_min": os_months_min,
        "os_months_max": os_months_max,
        "events_min": events_min,
        "events_max": events_max,
        "last_recorded_at_min": utc(last_recorded_at_min),
        "last_recorded_at_max": utc(last_recorded_at_max),
        "synthetic": synthetic,
    }
    return {k: v for k, v in filters.items() if v is not None}
