"""Output: one JSON document for `--json`, rich tables and short lines otherwise.

Nothing is computed here; every value shown comes from a read model or a receipt as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from domain import events as ev
from domain.export import ExportReport
from domain.integrity import ChainReport
from projections.audit import AuditPage, LedgerDigest
from projections.readmodels import PatientPage, PatientRow, ReplayStep
from projections.root import AccessPage, Receipt
from projections.timeline import summarize

# Piped output is not squeezed to 80 columns: ids and hashes stay on one line.
PIPE_WIDTH = 200


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*(_cell(v) for v in row))
    return result


def show(*renderables: Any) -> None:
    out = console()
    for renderable in renderables:
        out.print(renderable)


def _occurred(entry: ev.Event) -> str:
    return f"~{entry.occurred}" if entry.date_estimated else entry.occurred


# -- writes ------------------------------------------------------------------------------------


def receipt_line(patient_id: str, type_name: str, receipt: Receipt) -> str:
    what = "recorded" if receipt.created else "already recorded (nothing new)"
    return (
        f"{what}: {type_name} for {patient_id} as version {receipt.version}, "
        f"event {receipt.event_id}, at {_cell(receipt.recorded_at)}, hash {receipt.hash}"
    )


# -- history and replay --------------------------------------------------------------------------


def describe(entry: ev.AnyEvent) -> str:
    if isinstance(entry, ev.EventAmended):
        return (
            f"amends {entry.target_event_id}: {summarize(entry.replacement)} "
            f"(reason: {entry.reason})"
        )
    if isinstance(entry, ev.EventRetracted):
        return f"retracts {entry.target_event_id} (reason: {entry.reason})"
    return summarize(entry)


def history_table(patient_id: str, entries: Sequence[ev.AnyEvent]) -> Table:
    return table(
        f"History of {patient_id} ({len(entries)} events, stream order)",
        ["v", "occurred", "type", "what", "event_id", "recorded_at", "by", "source"],
        (
            [
                e.version,
                _occurred(e),
                e.type,
                describe(e),
                e.event_id,
                e.recorded_at,
                e.recorded_by,
                e.source,
            ]
            for e in entries
        ),
    )


def replay_table(patient_id: str, steps: Sequence[ReplayStep]) -> Table:
    return table(
        f"Replay of {patient_id}: derived state after each event",
        [
            "v",
            "type",
            "occurred",
            "stage",
            "stage trend",
            "CTC trend",
            "CTC/7.5mL",
            "response",
            "survival",
            "OS months",
        ],
        (
            [
                s.version,
                s.type,
                s.occurred,
                s.stage_group,
                s.stage_trend,
                s.ctc_trend,
                s.ctc_latest_per_7_5_ml,
                s.response,
                s.survival_status,
                s.os_months,
            ]
            for s in steps
        ),
    )


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
        f"histology: {_cell(view.histology)}",
        table(
            None,
            ["occurred", "TNM", "stage group", "table", "event_id"],
            (
                [a.occurred, a.tnm, a.stage_group, _cell(a.table or a.system), a.event_id]
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
        f"trend: {view.trend}; latest per 7.5 mL: {_cell(view.latest_per_7_5_ml)}; "
        f"cleared: {_cell(view.cleared)}",
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
        f"baseline sum: {_cell(view.baseline_sum_mm)} mm; nadir sum: "
        f"{_cell(view.nadir_sum_mm)} mm; current category: {_cell(view.current_category)}",
    ]


def _survival(view: Any) -> list[Any]:
    approx = " (approximate)" if view.approximate else ""
    censored = ", censored" if view.censored else ""
    return [
        f"Survival of {view.patient_id}: {view.status}{censored}; "
        f"overall survival {_cell(view.display)}{approx}",
        f"diagnosis {_cell(view.diagnosis_date)} to {_cell(view.end_date)}: "
        f"{_cell(view.os_days)} days, {_cell(view.os_months)} months",
    ]


_VIEW_RENDERERS = {
    "timeline": _timeline,
    "stage": _stage,
    "ctc": _ctc,
    "response": _response,
    "survival": _survival,
}


# -- cohort --------------------------------------------------------------------------------------

COHORT_COLUMNS = (
    ("patient_id", "patient"),
    ("sex", "sex"),
    ("birth_year", "born"),
    ("histology", "histology"),
    ("stage_group", "stage"),
    ("ctc_latest_per_7_5_ml", "CTC/7.5mL"),
    ("ctc_trend", "CTC trend"),
    ("concordance", "concordance"),
    ("survival_status", "survival"),
    ("os_months", "OS months"),
    ("events", "events"),
    ("last_recorded_at", "last recorded"),
)


def patient_lines(row: PatientRow, version: int) -> list[Any]:
    return [
        table(
            f"Patient {row.patient_id} (stream version {version})",
            ["field", "value"],
            ([label, getattr(row, name)] for name, label in COHORT_COLUMNS[1:]),
        )
    ]


def patients_page(page: PatientPage) -> list[Any]:
    out: list[Any] = [
        table(
            None,
            [label for _, label in COHORT_COLUMNS],
            ([getattr(row, name) for name, _ in COHORT_COLUMNS] for row in page.patients),
        ),
        f"{len(page.patients)} shown"
        + (f" of {page.total} matching" if page.total is not None else ""),
    ]
    if page.next_cursor:
        out.append(f"next page: --cursor {page.next_cursor}")
    return out


# -- integrity ---------------------------------------------------------------------------------


def chain_report(report: ChainReport) -> dict[str, Any]:
    """The report as one JSON object, its verdict spelled out."""
    breaks = [
        {"patient_id": b.patient_id, "version": b.version, "reason": b.reason}
        for b in report.breaks
    ]
    return {
        "ok": report.ok,
        "patients": report.patients,
        "events": report.events,
        "first_break": breaks[0] if breaks else None,
        "breaks": breaks,
        "erased": list(report.erased),
    }


def digest_lines(digest: LedgerDigest) -> list[str]:
    lines = [
        f"sha256 {digest.sha256}",
        f"sha256 with the access log {digest.sha256_with_access_log}",
        f"as of {_cell(digest.as_of)}: {digest.patients} patients, {digest.events} events, "
        f"{digest.access_log_entries} access-log entries",
    ]
    if not digest.verified:
        lines.append("WARNING: a chain did not verify; it enters the digest as broken (run verify)")
    return lines


def export_report_lines(report: ExportReport) -> list[str]:
    verdict = "intact" if report.ok else "DOES NOT VERIFY"
    lines = [
        f"export of {_cell(report.patient_id)}: {verdict}; {report.events} events, "
        f"head version {report.head_version}",
        f"chain digest {_cell(report.chain_digest)}",
    ]
    if report.digest_matched_version is not None:
        lines.append(f"the expected digest matches version {report.digest_matched_version}")
    return lines


def export_failure(report: ExportReport) -> str:
    """One sentence: the first break, else the first problem."""
    if report.first_break is not None:
        b = report.first_break
        return f"export chain broken at patient {b.patient_id} version {b.version}: {b.reason}"
    return f"export does not verify: {'; '.join(report.problems)}"


# -- audit -------------------------------------------------------------------------------------


AUDIT_COLUMNS = (
    "pos",
    "recorded_at",
    "by",
    "source",
    "type",
    "patient",
    "v",
    "event_id",
    "target",
    "reason",
)


def audit_page(page: AuditPage) -> list[Any]:
    out: list[Any] = [
        table(
            None,
            AUDIT_COLUMNS,
            (
                [
                    e.position,
                    e.recorded_at,
                    e.recorded_by,
                    e.source,
                    e.type,
                    e.patient_id,
                    e.version,
                    e.event_id,
                    e.target_event_id,
                    e.reason,
                ]
                for e in page.entries
            ),
        ),
        f"{len(page.entries)} entries",
    ]
    if page.next_cursor is not None:
        out.append(f"next page: --after {page.next_cursor}")
    return out


def access_page(page: AccessPage) -> list[Any]:
    out: list[Any] = [
        table(
            None,
            ["seq", "at", "actor", "channel", "resource", "patient", "address"],
            (
                [e.seq, e.at, e.actor, e.channel, e.resource, e.patient_id, e.address]
                for e in page.entries
            ),
        ),
        f"{len(page.entries)} entries",
    ]
    if page.next_cursor is not None:
        out.append(f"next page: --after {page.next_cursor}")
    return out
