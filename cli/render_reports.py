"""Reports across patients and stores as tables and lines: the cohort index, chain
verification, the digest, export verification, the audit trail and the access log."""

from __future__ import annotations

from typing import Any

from cli.render import cell, table
from domain.export import ExportReport
from domain.integrity import ChainReport
from projections.audit import AuditPage, LedgerDigest
from projections.readmodels import PatientPage, PatientRow
from projections.root import AccessPage

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
        f"as of {cell(digest.as_of)}: {digest.patients} patients, {digest.events} events, "
        f"{digest.access_log_entries} access-log entries",
    ]
    if not digest.verified:
        lines.append("WARNING: a chain did not verify; it enters the digest as broken (run verify)")
    return lines


def export_report_lines(report: ExportReport) -> list[str]:
    verdict = "intact" if report.ok else "DOES NOT VERIFY"
    lines = [
        f"export of {cell(report.patient_id)}: {verdict}; {report.events} events, "
        f"head version {report.head_version}",
        f"chain digest {cell(report.chain_digest)}",
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
