"""The cohort index's filters as query parameters, for every route that selects a cohort
(`GET /api/v1/patients`, `GET /api/v1/cohort/survival[/plot]`).

Each route declares the parameters in its own signature (the OpenAPI document and the query
check read them from there), typed with the aliases below, and hands them to `filters_of`,
which turns them into the service layer's `filters` in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar.params import QueryParameter

from api.params import MAX_BIGINT, utc
from domain import events as ev
from projections.ctc import ConcordanceStatus, CtcTrend

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


SexIn = Annotated[list[ev.Sex] | None, _any_of("sex")]
HistologyIn = Annotated[list[ev.Histology] | None, _any_of("histology")]
PrimarySiteIn = Annotated[list[str] | None, _any_of("primary site")]
StageGroupIn = Annotated[list[str] | None, _any_of("current stage group (e.g. IVB, unknown)")]
CtcTrendIn = Annotated[list[CtcTrend] | None, _any_of("CTC trend")]
ConcordanceIn = Annotated[list[ConcordanceStatus] | None, _any_of("CTC/stage concordance")]
StatusIn = Annotated[list[SurvivalStatus] | None, _any_of("survival status")]
StatusAliasIn = Annotated[
    list[SurvivalStatus] | None, _any_of("survival status (same as survival_status)")
]
BirthYearMin = Annotated[int | None, _bound("birth year", "at least", **_YEARS)]
BirthYearMax = Annotated[int | None, _bound("birth year", "at most", **_YEARS)]
CtcMin = Annotated[float | None, _bound("latest CTC per 7.5 mL", "at least", **_AMOUNTS)]
CtcMax = Annotated[float | None, _bound("latest CTC per 7.5 mL", "at most", **_AMOUNTS)]
OsMonthsMin = Annotated[float | None, _bound("overall survival in months", "at least", **_AMOUNTS)]
OsMonthsMax = Annotated[float | None, _bound("overall survival in months", "at most", **_AMOUNTS)]
EventsMin = Annotated[int | None, _bound("number of events", "at least", **_COUNTS)]
EventsMax = Annotated[int | None, _bound("number of events", "at most", **_COUNTS)]
RecordedMin = Annotated[datetime | None, _bound("last recording time", "at or after")]
RecordedMax = Annotated[datetime | None, _bound("last recording time", "at or before")]
Synthetic = Annotated[
    bool | None,
    QueryParameter(
        description="true: only synthetic patients (SYN-/DEMO- ids); false: only real ones; "
        "absent: both"
    ),
]


FILTER_PARAMETERS: tuple[str, ...] = (
    "sex",
    "histology",
    "primary_site",
    "stage_group",
    "ctc_trend",
    "concordance",
    "survival_status",
    "status",
    "birth_year_min",
    "birth_year_max",
    "ctc_latest_per_7_5_ml_min",
    "ctc_latest_per_7_5_ml_max",
    "os_months_min",
    "os_months_max",
    "events_min",
    "events_max",
    "last_recorded_at_min",
    "last_recorded_at_max",
    "synthetic",
)


def filters_of(parameters: dict[str, Any]) -> dict[str, Any]:
    """The filter parameters among a handler's `parameters` (its `locals()`), as the service
    layer takes them: `status` merged into `survival_status`, timestamps read as UTC, absent
    ones left out."""
    given = {name: parameters.get(name) for name in FILTER_PARAMETERS}
    status = given.pop("status", None)
    if status:
        given["survival_status"] = (given.get("survival_status") or []) + status
    for key in ("last_recorded_at_min", "last_recorded_at_max"):
        given[key] = utc(given.get(key))
    return {k: v for k, v in given.items() if v is not None}
