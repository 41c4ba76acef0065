"""The survival read model (SPEC §4): overall survival from diagnosis.

Choices where SPEC is silent:
- Diagnosis date: the first in-force `diagnosis_confirmed` in clinical order, else the first
  in-force `biopsy` with a malignant histology (set and not `no_malignancy`).
- `dead` at an in-force `death` (not censored); otherwise, with a diagnosis, `alive`, censored at
  the last in-force event in clinical order (a `lost_to_follow_up` follow-up is censored the same
  way: SPEC has no status for it). Without a diagnosis date there is no survival time: the status
  is still `dead` or `alive` (censored at the latest event), and the durations are null.
- Days between imputed days (`YYYY-MM` → 15th, `YYYY` → 1 July), never below 0 (a partial
  diagnosis month can impute past an exact later day). `approximate` when either date is partial
  or marked `date_estimated` by the abstractor: both make the count of days uncertain.
- `display` counts completed calendar years and months between the two days, as a clinician
  would say it (2017-01-01 to 2018-01-01 is "1 year"; 2016-05-09 to 2018-08-15 is "2 years
  3 months"), while `os_months` is `os_days / 30.4375` rounded to one decimal (SPEC §4).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date
from typing import Literal

from msgspec import Struct

from domain import events as ev
from projections.effective import Item, in_force

SurvivalStatus = Literal["alive", "dead"]

# 30.4375 days, the mean Gregorian month, as a ratio so whole months are counted exactly.
_MONTH_NUM, _MONTH_DEN = 487, 16


class SurvivalView(Struct, frozen=True, kw_only=True):
    patient_id: str
    diagnosis_date: str | None
    status: SurvivalStatus
    end_date: str | None
    os_days: int | None
    os_months: float | None
    display: str | None
    censored: bool
    approximate: bool


def compute_survival(patient_id: str, history: Sequence[ev.AnyEvent]) -> SurvivalView:
    return survival_of(patient_id, in_force(history))


def survival_of(patient_id: str, items: Sequence[Item]) -> SurvivalView:
    """The survival view from the items in force (clinical order)."""
    diagnosis = _diagnosis(items)
    death = next((item for item in items if isinstance(item.body, ev.Death)), None)
    return survival_between(patient_id, diagnosis, death, items[-1] if items else None)


def survival_between(
    patient_id: str, diagnosis: Item | None, death: Item | None, last: Item | None
) -> SurvivalView:
    """The survival view from its three items: the diagnosis, the death, the last in force."""
    status: SurvivalStatus
    end: Item | None
    if death is not None:
        status, end = "dead", death
    else:
        status, end = "alive", last
    days: int | None = None
    if diagnosis is not None and end is not None:
        days = max(0, (end.day - diagnosis.day).days)
    return SurvivalView(
        patient_id=patient_id,
        diagnosis_date=None if diagnosis is None else diagnosis.body.occurred,
        status=status,
        end_date=None if end is None else end.body.occurred,
        os_days=days,
        os_months=None if days is None else round(days * _MONTH_DEN / _MONTH_NUM, 1),
        display=(
            None
            if days is None or diagnosis is None or end is None
            else display_between(diagnosis.day, end.day)
        ),
        censored=status == "alive",
        approximate=(
            diagnosis is not None and end is not None and (_uncertain(diagnosis) or _uncertain(end))
        ),
    )


def display_between(start: date, end: date) -> str:
    """Completed calendar years and months: "2 years 3 months", "1 year", "0 months"."""
    months = (end.year - start.year) * 12 + (end.month - start.month)
    month_ends = end.day == calendar.monthrange(end.year, end.month)[1]
    if end.day < start.day and not month_ends:  # 31 May to 30 Sep is 4 whole months
        months -= 1
    years, months = divmod(max(0, months), 12)
    if years and months:
        return f"{_count(years, 'year')} {_count(months, 'month')}"
    if years:
        return _count(years, "year")
    return _count(months, "month")


def _diagnosis(items: Sequence[Item]) -> Item | None:
    for item in items:
        if isinstance(item.body, ev.DiagnosisConfirmed):
            return item
    for item in items:
        body = item.body
        if isinstance(body, ev.Biopsy) and body.histology not in (None, "no_malignancy"):
            return item
    return None


def _uncertain(item: Item) -> bool:
    return item.approximate or item.body.date_estimated


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
