"""The cohort index's filters, written once.

The names are the stored view's own (`projections.cohort_index` turns them into SQL, and
`cohort_subjects.matches` applies them to a recomputed row); this list adds what an adapter needs
to offer each one: the type of a value (a `Literal` is its vocabulary), a phrase saying what it
selects on, the bounds a stored value keeps to, and the short label and choices of a form field.
The API builds the query parameters of every cohort route from it (`api/cohort_filters.py`), the
CLI its options (`cli/filters.py`), the cohort page its form (`api/pages.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from domain import events as ev
from domain.staging import STAGE_ORDER, UNKNOWN
from projections import survival
from projections.ctc import ConcordanceStatus, CtcTrend

# The stored view's filter columns (`projections.cohort_index` turns them into SQL).
EQUALITY_NAMES: tuple[str, ...] = (
    "sex",
    "histology",
    "stage_group",
    "ctc_trend",
    "concordance",
    "survival_status",
    "primary_site",
)
RANGE_COLUMNS: tuple[str, ...] = (
    "birth_year",
    "ctc_latest_per_7_5_ml",
    "os_months",
    "events",
    "last_recorded_at",
)
SurvivalStatus = Literal["alive", "dead", "unknown"]
# Bounds keep every value storable (BIGINT) and finite; the columns hold nothing beyond them.
MAX_BIGINT = 2**63 - 1
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class AnyOf:
    """`name` equals one of the values given (a repeated filter matches any of them)."""

    name: str
    value: Any
    what: str
    label: str  # a form field's label
    # The values a form offers, where the type is no `Literal` or allows values never stored.
    offered: tuple[str, ...] | None = None

    @property
    def choices(self) -> tuple[str, ...]:
        return self.offered if self.offered is not None else get_args(self.value)


@dataclass(frozen=True)
class Between:
    """`column_min` / `column_max`: the column is at least / at most the value given."""

    column: str
    value: type[int] | type[float] | type[datetime]
    what: str
    label: str  # a form field's label
    ge: float | None = None
    le: float | None = None

    @property
    def bounds(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(parameter name, how the value bounds the column) for the lower and upper end."""
        low, high = (
            ("at or after", "at or before") if self.value is datetime else ("at least", "at most")
        )
        return (f"{self.column}_min", low), (f"{self.column}_max", high)


_ANY_OF = {
    f.name: f
    for f in (
        AnyOf("sex", ev.Sex, "sex", "Sex"),
        AnyOf("histology", ev.Histology, "histology", "Histology"),
        AnyOf("primary_site", str, "primary site", "Primary site"),
        AnyOf(
            "stage_group",
            str,
            "current stage group (e.g. IVB, unknown)",
            "Stage group",
            offered=(*STAGE_ORDER, UNKNOWN),
        ),
        AnyOf("ctc_trend", CtcTrend, "CTC trend", "CTC trend"),
        AnyOf("concordance", ConcordanceStatus, "CTC/stage concordance", "Concordance"),
        # `unknown` is accepted (and matches nothing); a form offers what a row can hold.
        AnyOf(
            "survival_status",
            SurvivalStatus,
            "survival status",
            "Survival",
            offered=get_args(survival.SurvivalStatus),
        ),
    )
}
_BETWEEN = {
    f.column: f
    for f in (
        Between("birth_year", int, "birth year", "Born", ge=1850, le=2200),
        Between(
            "ctc_latest_per_7_5_ml",
            float,
            "latest CTC per 7.5 mL",
            "Latest CTC /7.5 mL",
            ge=0,
            le=1e12,
        ),
        Between("os_months", float, "overall survival in months", "OS months", ge=0, le=1e12),
        Between("events", int, "number of events", "Events", ge=0, le=MAX_BIGINT),
        Between("last_recorded_at", datetime, "last recording time", "Last recorded"),
    )
}
# In the view's order; a filter the view gains without an entry here fails on import.
EQUALITY: tuple[AnyOf, ...] = tuple(_ANY_OF[name] for name in EQUALITY_NAMES)
RANGES: tuple[Between, ...] = tuple(_BETWEEN[column] for column in RANGE_COLUMNS)
# Every filter's name, as `filters` of `OncoLedger.patients` / `cohort_survival` takes them.
NAMES: tuple[str, ...] = (
    *EQUALITY_NAMES,
    *(name for f in RANGES for name, _ in f.bounds),
    SYNTHETIC,
)
