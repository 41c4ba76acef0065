"""The response read model (SPEC §4): target-lesion response, RECIST 1.1 style.

Choices where SPEC is silent, each the one RECIST itself makes:
- An assessment is one imaging *date*: in-force imaging events with lesions that share an
  `occurred` are one time point (a CT and a liver ultrasound on the same day are one work-up).
  A lesion measured twice on that date counts with its later record.
- The target lesions are those measured at the baseline (the first assessment). A lesion first
  seen later is never a target; it shows in `lesions` and, if marked `new`, means PD.
- `sum_mm` adds the longest diameters of the target lesions at that assessment. A target lesion
  not measured that day counts with its last measurement (carried forward, so leaving a lesion
  out of a report can never fake a response) and is listed in `missing_lesion_ids`; such an
  assessment does not become the nadir. The categories are SPEC's four: CR, PR, PD, else SD.
- Sums and thresholds use exact decimal arithmetic (38.5 mm is 77/2 mm), so -30 % and +20 % are
  met exactly at the boundary; the percentages shown are rounded to one decimal.
- The baseline row compares with nothing: both changes and the category are null.
  `current_category` is the last assessment's category, so null with fewer than two.
- `nadir_sum_mm` is the smallest complete sum so far, the latest included (the reference the next
  assessment is compared with); an assessment's own `change_from_nadir_pct` is against the
  smallest complete sum *before* it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal
from uuid import UUID

from msgspec import Struct

from domain import events as ev
from domain.dates import parse as parse_date
from projections.effective import Item, in_force, of_type

Category = Literal["CR", "PR", "SD", "PD"]

_PR_RATIO = Fraction(7, 10)  # a sum at most 70 % of baseline: a decrease of at least 30 %
_PD_RATIO = Fraction(6, 5)  # a sum at least 120 % of the nadir ...
_PD_MIN_MM = Fraction(5)  # ... and at least 5 mm larger


class LesionView(Struct, frozen=True, kw_only=True):
    lesion_id: str
    site: str
    target: bool
    first_seen: str
    last_seen: str
    latest_longest_mm: float
    # An ablation named it: RECIST would not evaluate it; it stays in the sums regardless.
    locally_treated: bool
    new: bool


class ResponseAssessment(Struct, frozen=True, kw_only=True):
    occurred: str
    approximate: bool
    event_ids: list[UUID]
    sum_mm: float
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    category: Category | None
    missing_lesion_ids: list[str]
    new_lesion_ids: list[str]


class ResponseView(Struct, frozen=True, kw_only=True):
    patient_id: str
    lesions: list[LesionView]
    assessments: list[ResponseAssessment]
    baseline_sum_mm: float | None
    nadir_sum_mm: float | None
    current_category: Category | None


@dataclass
class _TimePoint:
    occurred: str
    event_ids: list[UUID]
    measured: dict[str, ev.Lesion]


@dataclass
class _Track:
    site: str
    first_seen: str
    last_seen: str
    latest_longest: float
    new: bool


def compute_response(patient_id: str, history: Sequence[ev.AnyEvent]) -> ResponseView:
    return response_of(patient_id, in_force(history))


def response_of(patient_id: str, items: Sequence[Item]) -> ResponseView:
    """The response view from the items in force (clinical order)."""
    treated = {
        body.target_lesion_id
        for _, body in of_type(items, ev.Ablation)
        if body.target_lesion_id is not None
    }
    points = _time_points(of_type(items, ev.Imaging))
    tracks = _tracks(points)
    targets = list(points[0].measured) if points else []

    assessments: list[ResponseAssessment] = []
    baseline: Fraction | None = None
    nadir: Fraction | None = None
    last: dict[str, Fraction] = {}
    for point in points:
        last.update({lid: _mm(point.measured[lid]) for lid in targets if lid in point.measured})
        sizes = {lid: last[lid] for lid in targets if lid in last}
        missing = [lid for lid in targets if lid not in point.measured]
        new = [lid for lid, lesion in point.measured.items() if lesion.new]
        total = sum(sizes.values(), Fraction(0))
        category: Category | None = None
        from_baseline: float | None = None
        from_nadir: float | None = None
        if baseline is None:
            baseline = total
        else:
            assert nadir is not None
            from_baseline = _pct(total, baseline)
            from_nadir = _pct(total, nadir)
            category = _category(total, sizes, baseline, nadir, new=new)
        if not missing:
            nadir = total if nadir is None else min(nadir, total)
        assessments.append(
            ResponseAssessment(
                occurred=point.occurred,
                approximate=not parse_date(point.occurred).is_exact,
                event_ids=point.event_ids,
                sum_mm=float(total),
                change_from_baseline_pct=from_baseline,
                change_from_nadir_pct=from_nadir,
                category=category,
                missing_lesion_ids=missing,
                new_lesion_ids=new,
            )
        )

    return ResponseView(
        patient_id=patient_id,
        lesions=[
            LesionView(
                lesion_id=lid,
                site=t.site,
                target=lid in targets,
                first_seen=t.first_seen,
                last_seen=t.last_seen,
                latest_longest_mm=t.latest_longest,
                locally_treated=lid in treated,
                new=t.new,
            )
            for lid, t in tracks.items()
        ],
        assessments=assessments,
        baseline_sum_mm=None if baseline is None else float(baseline),
        nadir_sum_mm=None if nadir is None else float(nadir),
        current_category=assessments[-1].category if assessments else None,
    )


def _category(
    total: Fraction,
    sizes: dict[str, Fraction],
    baseline: Fraction,
    nadir: Fraction,
    *,
    new: list[str],
) -> Category:
    if new or (total >= nadir * _PD_RATIO and total - nadir >= _PD_MIN_MM):
        return "PD"
    if sizes and all(size == 0 for size in sizes.values()):
        return "CR"
    if baseline > 0 and total <= baseline * _PR_RATIO:
        return "PR"
    return "SD"


def _time_points(imaging: Sequence[tuple[Item, ev.Imaging]]) -> list[_TimePoint]:
    points: dict[str, _TimePoint] = {}
    for item, body in imaging:
        if not body.lesions:
            continue
        point = points.setdefault(body.occurred, _TimePoint(body.occurred, [], {}))
        point.event_ids.append(item.event_id)
        for lesion in body.lesions:
            point.measured[lesion.lesion_id] = lesion
    return list(points.values())


def _tracks(points: list[_TimePoint]) -> dict[str, _Track]:
    tracks: dict[str, _Track] = {}
    for point in points:
        for lid, lesion in point.measured.items():
            track = tracks.get(lid)
            if track is None:
                tracks[lid] = _Track(
                    lesion.site, point.occurred, point.occurred, lesion.dimensions_mm[0], lesion.new
                )
                continue
            track.site = lesion.site
            track.last_seen = point.occurred
            track.latest_longest = lesion.dimensions_mm[0]
            track.new = track.new or lesion.new
    return tracks


def _mm(lesion: ev.Lesion) -> Fraction:
    # The decimal as written (38.5 → 77/2), not the binary float nearest to it.
    return Fraction(repr(lesion.dimensions_mm[0]))


def _pct(value: Fraction, reference: Fraction) -> float | None:
    if reference == 0:
        return None
    return float(round((value - reference) / reference * 100, 1))
