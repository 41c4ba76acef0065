"""One patient's read models as rich tables (`timeline`, `stage`, `ctc`, `response`,
`survival`, and `demo`)."""

from __future__ import annotations

from typing import Any

from cli.render import cell, table

# -- read models -------------------------------------------------------------------------------


def render_view(name: str, view: Any) -> list[Any]:
    return _VIEW_RENDERERS[name](view)


def _timeline(view: Any) -> list[Any]:
    rows = []
    for e in view.events:
        reasons = "; ".join(f"{c.kind} by {c.recorded_by}: {c.reason}" for c in e.corrections)
        rows.append(
            [
                f"~{e.occurred}" if e.date_estimated else e.occurred,
                e.type,
                e.summary,
                e.status,
                reasons or None,
                e.event_id,
            ]
        )
    return [
        table(
            f"Timeline of {view.patient_id} (clinical order)",
            ["occurred", "type", "what", "status", "correction", "event_id"],
            rows,
        )
    ]


def _stage(view: Any) -> list[Any]:
    current = view.current
    headline = (
        f"Stage of {view.patient_id}: {current.tnm} stage {current.stage_group} "
        f"({current.table or current.system}, {current.occurred}); trend {view.trend}"
        if current
        else f"Stage of {view.patient_id}: no staging recorded; trend {view.trend}"
    )
    return [
        headline,
        f"histology: {cell(view.histology)}",
        table(
            None,
            ["occurred", "TNM", "stage group", "table", "event_id"],
            (
                [a.occurred, a.tnm, a.stage_group, cell(a.table or a.system), a.event_id]
                for a in view.history
            ),
        ),
    ]


def _ctc(view: Any) -> list[Any]:
    return [
        table(
            f"CTC counts of {view.patient_id} (positivity rule {view.rule})",
            ["occurred", "count", "blood mL", "per 7.5 mL", "change", "change %", "positive"],
            (
                [
                    d.occurred,
                    d.count,
                    d.blood_volume_ml,
                    d.per_7_5_ml,
                    d.change,
                    d.change_pct,
                    d.positive,
                ]
                for d in view.draws
            ),
        ),
        f"trend: {view.trend}; latest per 7.5 mL: {cell(view.latest_per_7_5_ml)}; "
        f"cleared: {cell(view.cleared)}",
        f"concordance: {view.concordance.status}: {view.concordance.summary}",
    ]


def _response(view: Any) -> list[Any]:
    return [
        table(
            f"Target lesions of {view.patient_id}",
            ["lesion", "site", "first seen", "last seen", "latest longest mm", "locally treated"],
            (
                [
                    lesion.lesion_id,
                    lesion.site,
                    lesion.first_seen,
                    lesion.last_seen,
                    lesion.latest_longest_mm,
                    lesion.locally_treated,
                ]
                for lesion in view.lesions
            ),
        ),
        table(
            "Assessments (RECIST 1.1 style)",
            ["occurred", "sum mm", "vs baseline %", "vs nadir %", "category"],
            (
                [
                    f"~{a.occurred}" if a.approximate else a.occurred,
                    a.sum_mm,
                    a.change_from_baseline_pct,
                    a.change_from_nadir_pct,
                    a.category,
                ]
                for a in view.assessments
            ),
        ),
        f"baseline sum: {cell(view.baseline_sum_mm)} mm; nadir sum: "
        f"{cell(view.nadir_sum_mm)} mm; current category: {cell(view.current_category)}",
    ]


def _survival(view: Any) -> list[Any]:
    approx = " (approximate)" if view.approximate else ""
    censored = ", censored" if view.censored else ""
    return [
        f"Survival of {view.patient_id}: {view.status}{censored}; "
        f"overall survival {cell(view.display)}{approx}",
        f"diagnosis {cell(view.diagnosis_date)} to {cell(view.end_date)}: "
        f"{cell(view.os_days)} days, {cell(view.os_months)} months",
    ]


_VIEW_RENDERERS = {
    "timeline": _timeline,
    "stage": _stage,
    "ctc": _ctc,
    "response": _response,
    "survival": _survival,
}
