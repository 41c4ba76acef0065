"""One patient's derived state, kept as its events arrive: the cost of an event is flat.

`PatientState` holds the patient's items in clinical order (`domain.in_force.InForce`), the
registration in force, and `Summary`: what the cohort index (`ol_patients`) and the survival
table (`ol_survival`) hold, folded one in-force item at a time in clinical order. The common
case, a new clinical event at or after the latest clinical date, is one fold; a correction
(amend / retract) or a late entry (an earlier date) marks the summary stale, and it is folded
again from the kept items (no read, no decode) when next asked for.

The folds reproduce exactly what the full computations give (`readmodels.project`, the
reference, over the whole history): the same helper functions decide every value, and a
property test holds the two equal on random streams with corrections, late entries and
partial dates.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Any
from uuid import UUID

from domain import events as ev
from domain.dates import parse as parse_date
from domain.in_force import InForce, Item
from projections.ctc import (
    _CONCORDANT,
    RULES,
    ConcordanceStatus,
    CtcTrend,
    _round,
    per_7_5_ml,
    stage_window,
)
from projections.readmodels import STORED_CTC_RULE, PatientRow
from projections.stage import Assessment, StageTrend, _assessment, stage_trend
from projections.survival import SurvivalView, survival_between

_THRESHOLD = RULES[STORED_CTC_RULE]
_CORRECTIONS = (ev.EventAmended, ev.EventRetracted)


class Summary:
    """The cohort-row and survival-row values of the items folded so far (clinical order)."""

    __slots__ = (
        "assessments",
        "at_dx",
        "biopsy_dx",
        "death",
        "downs",
        "draws",
        "dx_confirmed",
        "first_draw",
        "first_dx",
        "first_value",
        "last",
        "last_draw",
        "last_dx",
        "last_positive",
        "last_value",
        "positives",
        "stagings",
        "ups",
    )

    def __init__(self) -> None:
        # stage
        self.first_dx: ev.DiagnosisConfirmed | None = None
        self.last_dx: ev.DiagnosisConfirmed | None = None
        self.stagings: list[tuple[Item, ev.Staging]] = []
        self.assessments: list[Assessment] = []
        self.at_dx: int | None = None  # the first assessment dated on or after the diagnosis
        # ctc (the stored rule)
        self.draws = 0
        self.first_value = self.last_value = Fraction(0)
        self.ups = self.downs = 0  # steps between consecutive draws that rise, that fall
        self.positives = 0
        self.last_positive = False
        self.first_draw: Item | None = None
        self.last_draw: Item | None = None
        # survival
        self.dx_confirmed: Item | None = None
        self.biopsy_dx: Item | None = None
        self.death: Item | None = None
        self.last: Item | None = None

    def copy(self) -> Summary:
        """A copy that later folds leave unchanged (the lists are its own; the rest is
        immutable or replaced, never mutated, by a fold)."""
        twin = Summary.__new__(Summary)
        for name in Summary.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.stagings = list(self.stagings)
        twin.assessments = list(self.assessments)
        return twin

    # The types whose bodies a fold reads; of any other item it keeps only that it came last.
    READS = (ev.CtcCount, ev.Staging, ev.DiagnosisConfirmed, ev.Biopsy, ev.Death)

    def fold(self, item: Item) -> None:
        """One more in-force item, at or after every item folded so far."""
        body = item.body
        self.last = item
        if isinstance(body, ev.CtcCount):
            self._draw(item, body)
        elif isinstance(body, ev.Staging):
            self.stagings.append((item, body))
            assessment = _assessment(item, body, self.last_dx)
            self.assessments.append(assessment)
            if (
                self.at_dx is None
                and self.first_dx is not None
                and _on_or_after(assessment, self.first_dx)
            ):
                self.at_dx = len(self.assessments) - 1
        elif isinstance(body, ev.DiagnosisConfirmed):
            self.last_dx = body
            # The diagnosis in force restages every assessment (SPEC §4, `projections.stage`).
            self.assessments = [_assessment(i, b, body) for i, b in self.stagings]
            if self.first_dx is None:
                self.first_dx = body
                self.dx_confirmed = item
                self.at_dx = next(
                    (n for n, a in enumerate(self.assessments) if _on_or_after(a, body)), None
                )
        elif isinstance(body, ev.Biopsy):
            if self.biopsy_dx is None and body.histology not in (None, "no_malignancy"):
                self.biopsy_dx = item
        elif isinstance(body, ev.Death) and self.death is None:
            self.death = item

    def _draw(self, item: Item, body: ev.CtcCount) -> None:
        value = per_7_5_ml(body.count, body.blood_volume_ml)
        if self.draws:
            last = self.last_value  # compared, not subtracted: the same signs, no new Fraction
            self.ups += value > last
            self.downs += value < last
        else:
            self.first_value = value
            self.first_draw = item
        self.draws += 1
        self.last_value = value
        self.last_draw = item
        self.last_positive = value >= _THRESHOLD
        self.positives += self.last_positive

    def insert_draw(self, item: Item, before: Item | None, after: Item | None) -> None:
        """A draw placed between the in-force draws `before` and `after` (either may be None)
        of those folded: what folding them all in order would give."""
        assert isinstance(item.body, ev.CtcCount)
        value = _value(item)
        if before is not None and after is not None:
            self._step(_value(before), _value(after), -1)
        if before is not None:
            self._step(_value(before), value, 1)
        else:
            self.first_value, self.first_draw = value, item
        if after is not None:
            self._step(value, _value(after), 1)
        else:
            self.last_value, self.last_draw = value, item
            self.last_positive = value >= _THRESHOLD
        self.draws += 1
        self.positives += value >= _THRESHOLD

    def _step(self, a: Fraction, b: Fraction, sign: int) -> None:
        self.ups += sign * (b > a)
        self.downs += sign * (b < a)

    # -- what the rows hold ----------------------------------------------------------------------

    def ctc_trend(self) -> CtcTrend:
        if self.draws < 2:
            return "insufficient_data"
        if not self.ups and self.last_value < self.first_value:
            return "decreasing"
        if not self.downs and self.last_value > self.first_value:
            return "increasing"
        if not self.ups and not self.downs:
            return "stable"
        return "fluctuating"

    def concordance(self, trend: CtcTrend) -> ConcordanceStatus:
        if self.draws < 2 or trend in ("insufficient_data", "fluctuating"):
            return "undetermined"
        assert self.first_draw is not None and self.last_draw is not None
        start, end = stage_window(self.first_draw.day, self.last_draw.day, self.assessments)
        if start is None or end is None:
            return "undetermined"
        staged = stage_trend(start.stage_group, end.stage_group)
        if staged == "insufficient_data":
            return "undetermined"
        return "concordant" if (trend, staged) in _CONCORDANT else "discordant"

    def cleared(self) -> bool:
        earlier = self.positives - self.last_positive
        return self.draws > 0 and earlier > 0 and not self.last_positive

    def stage_trend(self) -> StageTrend:
        if len(self.assessments) < 2:
            return "insufficient_data"
        return stage_trend(self.assessments[0].stage_group, self.assessments[-1].stage_group)

    def at_diagnosis(self) -> Assessment | None:
        if not self.assessments:
            return None
        return self.assessments[0 if self.at_dx is None else self.at_dx]

    def survival(self, patient_id: str) -> SurvivalView:
        diagnosis = self.dx_confirmed or self.biopsy_dx
        return survival_between(patient_id, diagnosis, self.death, self.last)


def _value(item: Item) -> Fraction:
    body = item.body
    assert isinstance(body, ev.CtcCount)
    return per_7_5_ml(body.count, body.blood_volume_ml)


def _on_or_after(assessment: Assessment, diagnosis: ev.DiagnosisConfirmed) -> bool:
    return parse_date(assessment.occurred).latest >= parse_date(diagnosis.occurred).earliest


class PatientState:
    """A patient's items, registration and summary after its first `version` events.

    The summary is folded over the items in clinical order. A correction or a late entry
    changes the items from some position on: the summary is folded again from there, starting
    at the latest checkpoint before it (a copy of the summary taken every `CHECKPOINT_EVERY`
    items), so a late entry dated near the end costs the same at 10 and at 1,000 events."""

    CHECKPOINT_EVERY = 16

    __slots__ = (
        "_checkpoints",
        "_dirty",
        "_folded",
        "_summary",
        "items",
        "last_event_id",
        "last_recorded_at",
        "patient_id",
        "registration",
        "registration_id",
    )

    def __init__(self, patient_id: str, history: Sequence[ev.AnyEvent] = ()) -> None:
        self.patient_id = patient_id
        self.items = InForce()
        self.registration: ev.PatientRegistered | None = None
        self.registration_id: UUID | None = None
        self.last_recorded_at: datetime | None = None
        self.last_event_id: UUID | None = None
        self._summary = Summary()
        self._folded = 0  # items (in clinical order) the summary covers
        # The first position whose item changed since the summary was folded (None: none).
        self._dirty: int | None = None
        # (n, the summary over the first n items), n a multiple of CHECKPOINT_EVERY, ascending.
        self._checkpoints: list[tuple[int, Summary]] = []
        for entry in history:
            self.apply(entry)

    @property
    def version(self) -> int:
        return self.items.version

    def apply(self, entry: ev.AnyEvent) -> None:
        """The stream's next event (stream order)."""
        self.last_recorded_at = entry.recorded_at
        self.last_event_id = entry.event_id
        if isinstance(entry, ev.PatientRegistered):
            if self.registration is None:
                self.registration, self.registration_id = entry, entry.event_id
        elif (
            isinstance(entry, ev.EventAmended)
            and self.registration_id is not None
            and entry.target_event_id == self.registration_id
            and isinstance(entry.replacement, ev.PatientRegistered)
        ):
            self.registration = entry.replacement
        # Where the item the entry changes stands before it (a correction's target; an id
        # seen before, which the ledger never stores).
        key = entry.target_event_id if isinstance(entry, _CORRECTIONS) else entry.event_id
        known = self.items.get(key) if key is not None else None
        before = self._index(known) if known is not None else None
        change, item = self.items.apply(entry)
        if change == "ignored" or item is None:
            return
        if change == "appended" and before is None and self._dirty is None:
            self._advance()
            return
        at = self._index(item)
        after = self._in_force_after(at) if change == "inserted" else None
        if (
            after is not None
            and before is None
            and self._dirty is None
            and self._folded == len(self.items.items) - 1
        ):
            # A late entry placed before an item in force (at `after`), of a type the summary
            # does not read: every fold over a range holding it and a later item in force
            # gives what it gave without it. So the summary stands, and so do the checkpoints
            # past `after`, now covering one item more; those between lose their last item.
            # A late draw is placed between its neighbours; the checkpoints after it go.
            if not isinstance(item.body, Summary.READS):
                self._folded += 1
                self._checkpoints = [
                    (n + 1 if n > at else n, c)
                    for n, c in self._checkpoints
                    if n <= at or n + 1 > after
                ]
                return
            if isinstance(item.body, ev.CtcCount):
                self._summary.insert_draw(item, *self._draws_around(at))
                self._folded += 1
                while self._checkpoints and self._checkpoints[-1][0] > at:
                    self._checkpoints.pop()
                return
        if before is not None:
            at = min(at, before)
        self._dirty = at if self._dirty is None else min(self._dirty, at)

    def _draws_around(self, index: int) -> tuple[Item | None, Item | None]:
        """The in-force draws nearest before and after the item at `index`."""
        order = self.items.items
        before = next((order[n] for n in range(index - 1, -1, -1) if _is_draw(order[n])), None)
        after = next((order[n] for n in range(index + 1, len(order)) if _is_draw(order[n])), None)
        return before, after

    def _in_force_after(self, index: int) -> int | None:
        """The position of the first item in force after `index` (None: there is none)."""
        order = self.items.items
        return next(
            (n for n in range(index + 1, len(order)) if order[n].status != "retracted"), None
        )

    def _index(self, item: Item) -> int:
        """The item's position in clinical order (sort keys are unique: date, then version)."""
        order = self.items.items
        index = bisect_left(order, item.sort_key, key=_sort_key)
        assert order[index] is item
        return index

    def _advance(self) -> None:
        """Fold the items after those the summary covers, taking checkpoints on the way."""
        order = self.items.items
        every = self.CHECKPOINT_EVERY
        summary = self._summary
        for n in range(self._folded, len(order)):
            if n and n % every == 0 and (not self._checkpoints or self._checkpoints[-1][0] < n):
                self._checkpoints.append((n, summary.copy()))
            item = order[n]
            if item.status != "retracted":
                summary.fold(item)
        self._folded = len(order)

    def follows(self, history: Sequence[ev.AnyEvent]) -> bool:
        """Is this state a prefix of `history` (so the rest can be applied to it)?"""
        v = self.version
        return v <= len(history) and (v == 0 or history[v - 1].event_id == self.last_event_id)

    def summary(self) -> Summary:
        if self._dirty is not None:
            # Folded again from the latest checkpoint that covers only unchanged items.
            while self._checkpoints and self._checkpoints[-1][0] > self._dirty:
                self._checkpoints.pop()
            if self._checkpoints:
                self._folded, kept = self._checkpoints[-1]
                self._summary = kept.copy()
            else:
                self._folded, self._summary = 0, Summary()
            self._dirty = None
        if self._folded < len(self.items.items):
            self._advance()
        return self._summary

    def rows(self) -> tuple[PatientRow, tuple[Any, ...]]:
        """The cohort row and the `ol_survival` row (`projections.survival_subjects`)."""
        s = self.summary()
        trend = s.ctc_trend()
        survival = s.survival(self.patient_id)
        registration = self.registration
        current = s.assessments[-1] if s.assessments else None
        at_diagnosis = s.at_diagnosis()
        row = PatientRow(
            patient_id=self.patient_id,
            sex=registration.sex if registration else None,
            birth_year=registration.birth_year if registration else None,
            primary_site=registration.primary_site if registration else None,
            histology=s.last_dx.histology if s.last_dx else None,
            stage_group=current.stage_group if current else None,
            ctc_latest_per_7_5_ml=_round(s.last_value, 2) if s.draws else None,
            ctc_trend=trend,
            concordance=s.concordance(trend),
            survival_status=survival.status,
            os_months=survival.os_months,
            events=self.version,
            last_recorded_at=self.last_recorded_at,
        )
        survival_row = (
            self.patient_id,
            survival.diagnosis_date,
            survival.os_days,
            int(survival.status == "dead"),
            int(survival.approximate),
            at_diagnosis.stage_group if at_diagnosis else None,
            s.stage_trend(),
            int(s.cleared()),
            s.draws,
        )
        return row, survival_row


def _is_draw(item: Item) -> bool:
    return item.status != "retracted" and isinstance(item.body, ev.CtcCount)


def _sort_key(item: Item) -> tuple[date, int]:
    return item.sort_key
