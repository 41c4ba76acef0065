"""Recording events: `record`, `append`, `import`, and the corrections `amend` and `retract`."""

from __future__ import annotations

from typing import Any, BinaryIO
from uuid import UUID, uuid4

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli import render
from cli.errors import ImportFailed, LedgerError
from cli.params import json_option
from cli.record import EVENT_TYPE, body_options, build_body, given_fields, types_help
from cli.session import SOURCE, Session, pass_session
from domain.events import SERVER_FIELDS
from domain.input_checks import parse_json, strip_bom
from projections.root import OncoLedger

# -- writes -------------------------------------------------------------------------------------


def print_receipts(
    patient_id: str, types: list[str], receipts: list[Any], as_json: bool, *, single: bool = False
) -> None:
    if as_json:
        render.emit_json(receipts[0] if single else receipts)
        return
    for type_name, receipt in zip(types, receipts, strict=True):
        click.echo(render.receipt_line(patient_id, type_name, receipt))


@click.command(epilog=types_help())
@click.argument("patient_id")
@click.argument("event_type", metavar="TYPE", type=EVENT_TYPE)
@click.option("--on", "occurred", required=True, metavar="DATE", help="YYYY[-MM[-DD]].")
@click.option("--estimated", is_flag=True, help="The date is estimated.")
@click.option("--note", help="Free text, at most 2,000 characters.")
@click.option("--event-id", type=click.UUID, help="Client-chosen event id (makes retries safe).")
@click.option(
    "--expect-version",
    type=int,
    help="Refuse (exit 4) unless the stream is at this version.",
)
@body_options(for_record=True)
@json_option
@pass_session
def record(
    session: Session,
    /,
    patient_id: str,
    event_type: str,
    occurred: str,
    estimated: bool,
    note: str | None,
    event_id: UUID | None,
    expect_version: int | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Record one clinical event of TYPE for PATIENT_ID, from typed options."""
    body = build_body(
        event_type,
        occurred=occurred,
        estimated=estimated,
        note=note,
        fields=given_fields(options),
        event_id=str(event_id or uuid4()),  # known before writing: a retry can name it
    )
    (receipt,) = session.open().append(
        patient_id,
        [body],
        actor=session.actor,
        source=SOURCE,
        expected_version=expect_version,
    )
    print_receipts(patient_id, [event_type], [receipt], as_json, single=True)


def _read_json(stream: BinaryIO, what: str) -> Any:
    return parse_json(strip_bom(stream.read()), what=what)


@click.command()
@click.argument("patient_id")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--expect-version", type=int, help="Refuse (exit 4) unless the stream is at this version."
)
@json_option
@pass_session
def append(
    session: Session,
    patient_id: str,
    file: BinaryIO,
    expect_version: int | None,
    as_json: bool,
) -> None:
    """Append the events in FILE (`-`: stdin), a JSON object or array, as one atomic batch."""
    data = _read_json(file, "FILE")
    bodies = data if isinstance(data, list) else [data]
    receipts = session.open().append(
        patient_id, bodies, actor=session.actor, source=SOURCE, expected_version=expect_version
    )
    types = [b.get("type", "event") if isinstance(b, dict) else "event" for b in bodies]
    print_receipts(patient_id, [str(t) for t in types], receipts, as_json)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@json_option
@pass_session
def import_(session: Session, file: str, as_json: bool) -> None:
    """Import JSON Lines (`-`: stdin): one event per line, each with `patient_id` and `type`.

    Valid lines are stored, invalid ones reported on stderr as `line N: reason`; the exit code
    is 2 when any line failed.
    """
    service = session.open()
    err = render.console(stderr=True)
    total: int | None = None
    if file != "-":
        with open(file, "rb") as counting:
            total = sum(1 for _ in counting)
    with (
        click.open_file(file, "rb") as lines,
        Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress,
    ):
        task = progress.add_task("import", total=total)
        report = service.import_lines(
            lines,
            actor=session.actor,
            progress=lambda n: progress.update(task, completed=n),
        )
    for number, reason in report.failed:
        click.echo(f"line {number}: {reason}", err=True)
    if as_json:
        summary: dict[str, Any] = {
            "stored": report.stored,
            "duplicates": report.duplicates,
            "failed": [{"line": n, "reason": r} for n, r in report.failed],
            "server_fields_ignored": report.server_fields_ignored,
        }
        if report.stopped_at is not None:  # only an import a storage fault stopped says so
            summary |= {
                "stopped_at": report.stopped_at,
                "stopped_because": report.stopped_because,
                "stopped_outcome_unknown": report.stopped_outcome_unknown,
            }
        render.emit_json(summary)
    else:
        click.echo(
            f"imported: {report.stored} stored, {report.duplicates} already recorded, "
            f"{len(report.failed)} failed"
        )
    if report.server_fields_ignored and not as_json:
        click.echo(
            f"{report.server_fields_ignored} line(s) carried server-assigned fields "
            f"({', '.join(SERVER_FIELDS)}): ignored, assigned anew by this ledger",
            err=True,
        )
    if report.stopped_at is not None:
        at = report.stopped_at
        left = (
            f"line {at}'s batch may or may not be stored, none after it"
            if report.stopped_outcome_unknown
            else f"none from line {at} on"
        )
        raise LedgerError(
            f"the import stopped at line {at}: {report.stopped_because}. The valid lines "
            f"before it are stored, {left}: once the store is back, import the rest "
            f"(e.g. tail -n +{at} FILE | oncoledger import -)"
        )
    if report.failed:
        raise ImportFailed(f"{len(report.failed)} line(s) failed; the valid lines are stored")


def _target_type(service: OncoLedger, patient_id: str, event_id: UUID) -> str:
    return service.event(patient_id, event_id).type


@click.command(epilog=types_help())
@click.argument("patient_id")
@click.argument("event_id", type=click.UUID)
@click.option("--reason", required=True, help="Why the event is corrected.")
@click.option("--body", "body_json", metavar="JSON", help="The complete replacement body.")
@click.option(
    "--type",
    "event_type",
    type=EVENT_TYPE,
    help="Type of the replacement [default: the target's type].",
)
@click.option("--on", "occurred", metavar="DATE", help="The replacement's date YYYY[-MM[-DD]].")
@click.option("--estimated", is_flag=True, help="The replacement's date is estimated.")
@click.option("--note", help="The replacement's note.")
@click.option(
    "--amendment-id", type=click.UUID, help="Client-chosen id of the amendment event itself."
)
@body_options(for_record=False)
@json_option
@pass_session
def amend(
    session: Session,
    /,
    patient_id: str,
    event_id: UUID,
    reason: str,
    body_json: str | None,
    event_type: str | None,
    occurred: str | None,
    estimated: bool,
    note: str | None,
    amendment_id: UUID | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Correct EVENT_ID with a complete replacement: `--body JSON`, or `--on` + type options."""
    fields = given_fields(options)
    service = session.open()
    if body_json is not None:
        if occurred is not None or estimated or note is not None or fields:
            raise click.UsageError("give either --body or --on with type options, not both")
        replacement = parse_json(body_json, what="--body")
        if not isinstance(replacement, dict):
            raise click.BadParameter("must be a JSON object", param_hint="'--body'")
        if "type" not in replacement:
            replacement["type"] = event_type or _target_type(service, patient_id, event_id)
    else:
        if occurred is None:
            raise click.UsageError("give --body JSON, or --on DATE with the type options")
        replacement = build_body(
            event_type or _target_type(service, patient_id, event_id),
            occurred=occurred,
            estimated=estimated,
            note=note,
            fields=fields,
        )
    receipt = service.amend(
        patient_id,
        event_id,
        replacement,
        reason=reason,
        actor=session.actor,
        source=SOURCE,
        event_id=amendment_id or uuid4(),
    )
    print_receipts(patient_id, ["event_amended"], [receipt], as_json, single=True)


@click.command()
@click.argument("patient_id")
@click.argument("event_id", type=click.UUID)
@click.option("--reason", required=True, help="Why the event was entered in error.")
@click.option(
    "--retraction-id", type=click.UUID, help="Client-chosen id of the retraction event itself."
)
@json_option
@pass_session
def retract(
    session: Session,
    patient_id: str,
    event_id: UUID,
    reason: str,
    retraction_id: UUID | None,
    as_json: bool,
) -> None:
    """Withdraw EVENT_ID as entered in error (it stays in history, marked)."""
    receipt = session.open().retract(
        patient_id,
        event_id,
        reason=reason,
        actor=session.actor,
        source=SOURCE,
        event_id=retraction_id or uuid4(),
    )
    print_receipts(patient_id, ["event_retracted"], [receipt], as_json, single=True)
