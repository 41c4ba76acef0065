"""Tamper evidence and audit (SPEC §6, §7): verify, digest, export, audit, access-log."""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO

import click

from cli import render, render_reports
from cli.errors import IntegrityFailure
from cli.params import TIMESTAMP, json_option
from cli.session import SOURCE, Session, pass_session
from projections.audit import AuditPage
from projections.root import OncoLedger

# -- integrity ----------------------------------------------------------------------------------


@click.command(epilog="Exit code 5 when a chain (or the export) does not verify.")
@click.argument("patient_id", required=False)
@click.option(
    "--file",
    "export_file",
    type=click.File("rb"),
    help="Verify an export document (`-`: stdin) instead of the store; no database is opened.",
)
@click.option(
    "--digest",
    "expected_digest",
    metavar="SHA256",
    help="With --file: a head hash or chain digest kept elsewhere that the export must match.",
)
@json_option
@pass_session
def verify(
    session: Session,
    patient_id: str | None,
    export_file: BinaryIO | None,
    expected_digest: str | None,
    as_json: bool,
) -> None:
    """Recompute the hash chains (all patients, or PATIENT_ID) from the stored events."""
    if export_file is not None:
        if patient_id is not None:
            raise click.UsageError("give PATIENT_ID or --file, not both")
        _verify_export(export_file.read(), expected_digest, as_json)
        return
    if expected_digest is not None:
        raise click.UsageError("--digest goes with --file")
    report = session.open().verify(patient_id)
    if as_json:
        render.emit_json(render_reports.chain_report(report))
    elif report.ok:
        click.echo(
            f"intact: {report.patients} patient(s), {report.events} events, every chain verified"
        )
    else:
        click.echo(
            f"BROKEN: {len(report.breaks)} of {report.patients} chain(s); "
            f"{report.events} events checked"
        )
    if not as_json and report.erased:
        click.echo(
            f"erased: {', '.join(report.erased)} (linkage checked from the stored hashes; "
            "their content was destroyed with their keys)"
        )
    broken = report.first_break
    if broken is not None:
        raise IntegrityFailure(
            f"hash chain broken at patient {broken.patient_id} version {broken.version}: "
            f"{broken.reason}"
        )


def _verify_export(document: bytes, expected_digest: str | None, as_json: bool) -> None:
    report = OncoLedger.verify_export(document, digest=expected_digest)
    if as_json:
        render.emit_json(report)
    else:
        for line in render_reports.export_report_lines(report):
            click.echo(line)
    if not report.ok:
        raise IntegrityFailure(render_reports.export_failure(report))


@click.command()
@click.option(
    "--as-of",
    type=TIMESTAMP,
    help="Recompute the digest over what was recorded up to this instant (ISO 8601).",
)
@json_option
@pass_session
def digest(session: Session, as_of: datetime | None, as_json: bool) -> None:
    """One SHA-256 over every stream head (and the access log's): keep it elsewhere."""
    result = session.open().digest(as_of=as_of)
    if as_json:
        render.emit_json(result)
        return
    for line in render_reports.digest_lines(result):
        click.echo(line)


@click.command()
@click.argument("patient_id")
@pass_session
def export(session: Session, patient_id: str) -> None:
    """PATIENT_ID's stream as one self-contained JSON document that verifies offline."""
    document = session.open().export(patient_id)
    session.log_read("export", patient_id)
    render.emit_json(document)


# -- audit ----------------------------------------------------------------------------------


@click.command()
@click.argument("patient_id", required=False)
@click.option("--since", type=TIMESTAMP, help="Recorded at or after (ISO 8601; naive is UTC).")
@click.option("--until", type=TIMESTAMP, help="Recorded at or before.")
@click.option("--actor", "recorded_by", metavar="NAME", help="Recorded by this actor.")
@click.option("--type", "types", multiple=True, help="Event type; repeatable.")
@click.option("--corrections", is_flag=True, help="Only amendments and retractions.")
@click.option("--after", type=int, metavar="POSITION", help="The next_cursor of the last page.")
@click.option("--limit", type=int, help="Entries per page (default: every entry, no paging).")
@json_option
@pass_session
def audit(
    session: Session,
    patient_id: str | None,
    since: datetime | None,
    until: datetime | None,
    recorded_by: str | None,
    types: tuple[str, ...],
    corrections: bool,
    after: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Every stored event (or PATIENT_ID's) in recording order: who recorded what, when, why."""
    service = session.open()
    entries = []
    while True:
        page = service.audit(
            patient_id,
            actor=recorded_by,
            type=list(types) or None,
            since=since,
            until=until,
            corrections=corrections,
            after=after,
            limit=limit or 1000,
        )
        entries.extend(page.entries)
        if limit is not None or page.next_cursor is None:
            break
        after = page.next_cursor
    page = AuditPage(entries=entries, next_cursor=page.next_cursor if limit else None)
    session.log_read("audit", patient_id)
    if as_json:
        render.emit_json(page)
        return
    render.show(*render_reports.audit_page(page))


@click.command("access-log")
@click.argument("patient_id", required=False)
@click.option("--actor", "reader", metavar="NAME", help="Reads by this actor.")
@click.option("--since", type=TIMESTAMP, help="At or after (ISO 8601; naive is UTC).")
@click.option("--until", type=TIMESTAMP, help="At or before.")
@click.option("--after", type=int, metavar="SEQ", help="The next_cursor of the last page.")
@click.option("--limit", type=int, default=1000, show_default=True, help="Entries per page.")
@click.option(
    "--verify", "check", is_flag=True, help="Recompute the access log's hash chain instead."
)
@json_option
@pass_session
def access_log(
    session: Session,
    patient_id: str | None,
    reader: str | None,
    since: datetime | None,
    until: datetime | None,
    after: int | None,
    limit: int,
    check: bool,
    as_json: bool,
) -> None:
    """Who read which patient's clinical data, when, through which channel (this read is logged).

    With --verify: exit code 5 when the access log's chain is broken.
    """
    service = session.open()
    if check:
        report = service.verify_access_log()
        if as_json:
            render.emit_json(report)
        elif report.ok:
            click.echo(f"intact: {report.entries} access-log entries, chain verified")
        if not report.ok:
            raise IntegrityFailure(
                f"access log broken at entry {report.first_broken_seq}: {report.reason}"
            )
        return
    page = service.access_entries(
        session.actor,
        channel=SOURCE,
        patient_id=patient_id,
        actor=reader,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )
    if as_json:
        render.emit_json(page)
        return
    render.show(*render_reports.access_page(page))
