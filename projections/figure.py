"""What the case report's Figure 4 shows for any patient, taken from the read models.

The CTC trajectory (ctc view), the stage group in force over time (stage view), treatments,
declined therapy and imaging (timeline view, retracted events left out, amended ones as
replaced) and the end of follow-up (survival view), all on one axis of clinical days. Partial
dates sit at their imputed day (SPEC §4) and, like dates the abstractor estimated, are marked
`approximate`. `projections.chart` draws this; nothing here knows about plotting.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from msgspec import Struct

from domain.dates import parse as parse_date
from domain.staging import STAGE_ORDER, UNKNOWN, stage_rank
from projections.ctc import RULES, CtcView, format_number
from projections.stage import StageView
from projections.survival import SurvivalView
from projections.timeline import TimelineEntry, TimelineView

Format = Literal["svg", "png", "pdf"]
FORMATS: tuple[Format, ...] = ("svg", "png", "pdf")
MEDIA_TYPES: dict[Format, str] = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "pdf": "application/pdf",
}
APPROX = "~"  # before a date that is partial or estimated

Lane = Literal[
    "chemotherapy", "radiotherapy", "ablation", "surgery", "declined", "imaging", "outcome"
]
# Top to bottom in the figure's lower panel; lanes without events are left out.
LANES: tuple[Lane, ...] = (
    "chemotherapy",
    "radiotherapy",
    "ablation",
    "surgery",
    "declined",
    "imaging",
    "outcome",
)
LANE_TITLES: dict[Lane, str] = {
    "chemotherapy": "Chemotherapy",
    "radiotherapy": "Radiotherapy",
    "ablation": "Ablation",
    "surgery": "Surgery",
    "declined": "Therapy declined",
    "imaging": "Imaging",
    "outcome": "Outcome",
}
_LANE_OF_TYPE: dict[str, Lane] = {
    "chemotherapy": "chemotherapy",
    "radiotherapy": "radiotherapy",
    "ablation": "ablation",
    "surgery": "surgery",
    "therapy_declined": "declined",
    "imaging": "imaging",
}
_ABLATION = {"radiofrequency": "RFA", "microwave": "MWA", "cryo": "cryoablation"}


class CtcPoint(Struct, frozen=True, kw_only=True):
    occurred: str
    day: date
    approximate: bool
    count: int
    blood_volume_ml: float
    per_7_5_ml: float
    positive: bool

    @property
    def raw_label(self) -> str:
        """The raw count as drawn: "4", or "1 in 10 mL" when the volume is not 7.5 mL."""
        if self.blood_volume_ml == 7.5:
            return str(self.count)
        return f"{self.count} in {format_number(self.blood_volume_ml)} mL"


class StagePoint(Struct, frozen=True, kw_only=True):
    occurred: str
    day: date
    approximate: bool
    tnm: str
    stage_group: str


class Mark(Struct, frozen=True, kw_only=True):
    """One event of the lower panel: a span when it has an end (a chemotherapy `ended`)."""

    lane: Lane
    type: str
    occurred: str
    day: date
    end: date | None
    approximate: bool
    label: str


class FigureData(Struct, frozen=True, kw_only=True):
    patient_id: str
    rule: str
    threshold: int
    draws: list[CtcPoint]
    stages: list[StagePoint]
    # The stage axis, lowest first: `unknown` (only when an assessment has it), then STAGE_ORDER.
    stage_levels: list[str]
    marks: list[Mark]
    first_day: date | None
    last_day: date | None
    caption: str
    concordance: str

    @property
    def lanes(self) -> list[Lane]:
        used = {mark.lane for mark in self.marks}
        return [lane for lane in LANES if lane in used]

    @property
    def empty(self) -> bool:
        return not (self.draws or self.stages or self.marks)


def figure_data(
    timeline: TimelineView, stage: StageView, ctc: CtcView, survival: SurvivalView
) -> FigureData:
    """The figure's content for one patient, from its four read models (as of the same moment)."""
    entries = {entry.event_id: entry for entry in timeline.events}

    def approximate(event_id: Any, occurred: str) -> bool:
        entry = entries.get(event_id)
        return not parse_date(occurred).is_exact or bool(entry and entry.date_estimated)

    draws = [
        CtcPoint(
            occurred=d.occurred,
            day=_day(d.occurred),
            approximate=approximate(d.event_id, d.occurred),
            count=d.count,
            blood_volume_ml=d.blood_volume_ml,
            per_7_5_ml=d.per_7_5_ml,
            positive=d.positive,
        )
        for d in ctc.draws
    ]
    stages = [
        StagePoint(
            occurred=a.occurred,
            day=_day(a.occurred),
            approximate=approximate(a.event_id, a.occurred),
            tnm=a.tnm,
            stage_group=a.stage_group if stage_rank(a.stage_group) is not None else UNKNOWN,
        )
        for a in stage.history
    ]
    marks = [
        _mark(e) for e in timeline.events if e.status != "retracted" and e.type in _LANE_OF_TYPE
    ]
    outcome = _outcome(survival, timeline)
    if outcome is not None:
        marks.append(outcome)
    levels = list(STAGE_ORDER)
    if any(s.stage_group == UNKNOWN for s in stages):
        levels.insert(0, UNKNOWN)
    days = [p.day for p in draws] + [s.day for s in stages]
    days += [m.day for m in marks] + [m.end for m in marks if m.end is not None]
    return FigureData(
        patient_id=ctc.patient_id,
        rule=ctc.rule,
        threshold=RULES[ctc.rule],
        draws=draws,
        stages=stages,
        stage_levels=levels,
        marks=marks,
        first_day=min(days) if days else None,
        last_day=max(days) if days else None,
        caption=ctc.concordance.summary,
        concordance=ctc.concordance.status,
    )


def _day(occurred: str) -> date:
    return parse_date(occurred).imputed


def _mark(entry: TimelineEntry) -> Mark:
    body = entry.event
    lane = _LANE_OF_TYPE[entry.type]
    end: date | None = None
    label = ""
    if entry.type == "chemotherapy":
        courses = int(body.get("courses", 1))
        label = f"{body.get('regimen', '')} \N{MULTIPLICATION SIGN}{courses}"
        if body.get("ended"):
            end = _day(str(body["ended"]))
    elif entry.type == "radiotherapy":
        label = f"{format_number(float(body.get('dose_gy', 0)))} Gy"
    elif entry.type == "ablation":
        modality = str(body.get("modality", "other"))
        label = _ABLATION.get(modality, "ablation")
    elif entry.type == "surgery":
        label = str(body.get("procedure", ""))
    elif entry.type == "therapy_declined":
        label = "declined"
    return Mark(
        lane=lane,
        type=entry.type,
        occurred=entry.occurred,
        day=_day(entry.occurred),
        end=end if end is not None and end > _day(entry.occurred) else None,
        approximate=not parse_date(entry.occurred).is_exact or entry.date_estimated,
        label=label,
    )


def _outcome(survival: SurvivalView, timeline: TimelineView) -> Mark | None:
    """Death, or (alive) the last event: where follow-up ends."""
    if survival.end_date is None:
        return None
    dead = survival.status == "dead"
    ending = next(
        (
            e
            for e in reversed(timeline.events)
            if e.status != "retracted"
            and e.occurred == survival.end_date
            and (e.type == "death" or not dead)
        ),
        None,
    )
    estimated = bool(ending and ending.date_estimated)
    label = "death" if dead else "alive at last follow-up"
    if ending and ending.type == "follow_up" and ending.event.get("status") == "lost_to_follow_up":
        label = "lost to follow-up"
    return Mark(
        lane="outcome",
        type="death" if dead else "last_follow_up",
        occurred=survival.end_date,
        day=_day(survival.end_date),
        end=None,
        approximate=not parse_date(survival.end_date).is_exact or estimated,
        label=label,
    )


def describe(data: FigureData) -> str:
    """A plain-text account of the figure (its alternative text on the patient page)."""
    draws = ", ".join(
        f"{format_number(p.per_7_5_ml)} on {APPROX if p.approximate else ''}{p.occurred}"
        for p in data.draws
    )
    stages = ", ".join(f"{s.tnm} ({s.stage_group})" for s in data.stages)
    return (
        f"CTCs per 7.5 mL: {draws or 'none'}. Stage assessments: {stages or 'none'}. "
        f"{data.caption}."
    )
