"""Partial clinical dates: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.

Abstracted records often know only the year or the month of a finding. A partial date sorts by
its earliest instant; a computation that needs a day imputes `YYYY-MM` as the 15th and `YYYY`
as 1 July and marks its result approximate (SPEC §4).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

PARTIAL_DATE_PATTERN = r"^\d{4}(-\d{2}(-\d{2})?)?$"
_PARTIAL_DATE = re.compile(PARTIAL_DATE_PATTERN)


class InvalidPartialDate(ValueError):
    """The text is not a real calendar date in one of the three partial forms."""


@dataclass(frozen=True, slots=True)
class PartialDate:
    year: int
    month: int | None = None
    day: int | None = None

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        if not _PARTIAL_DATE.match(text):
            raise InvalidPartialDate(f"{text!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
        parts = [int(p) for p in text.split("-")]
        year = parts[0]
        month = parts[1] if len(parts) > 1 else None
        day = parts[2] if len(parts) > 2 else None
        if year < 1800:
            raise InvalidPartialDate(f"{text!r} has a year before 1800")
        if month is not None and not 1 <= month <= 12:
            raise InvalidPartialDate(f"{text!r} has no month {month}")
        if day is not None and month is not None:
            last = calendar.monthrange(year, month)[1]
            if not 1 <= day <= last:
                raise InvalidPartialDate(f"{text!r} is not a calendar date")
        return cls(year, month, day)

    @property
    def earliest(self) -> date:
        return date(self.year, self.month or 1, self.day or 1)

    @property
    def latest(self) -> date:
        if self.day is not None and self.month is not None:
            return date(self.year, self.month, self.day)
        if self.month is not None:
            return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])
        return date(self.year, 12, 31)

    @property
    def imputed(self) -> date:
        """The day used where a computation needs one: the 15th, or 1 July."""
        if self.day is not None and self.month is not None:
            return date(self.year, self.month, self.day)
        if self.month is not None:
            return date(self.year, self.month, 15)
        return date(self.year, 7, 1)

    @property
    def is_exact(self) -> bool:
        return self.day is not None

    def is_certainly_after(self, other: PartialDate) -> bool:
        """True only when every day this date may stand for is after every day of `other`."""
        return self.earliest > other.latest

    def __str__(self) -> str:
        if self.day is not None:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        if self.month is not None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}"


@lru_cache(maxsize=65_536)
def parse(text: str) -> PartialDate:
    """`PartialDate.parse`, remembered: read models parse the same few dates over and over."""
    return PartialDate.parse(text)


def sort_key(text: str) -> date:
    """Partial dates sort by their earliest instant."""
    return parse(text).earliest
