"""`oncoledger`: the command line, a thin shell over `projections.root.OncoLedger`.

Each command parses its arguments, makes one call to the service layer and formats the result.
The ledger is opened on first use and closed when the command ends.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse
from uuid import UUID, uuid4

import click
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli import render
from cli.audit import access_log, audit, digest, export, verify
from cli.cbioportal import cbioportal, export_command
from cli.chart import chart
from cli.cohort import cohort, record_cohort
from cli.erasure import keys, migrate, patient_erase
from cli.errors import EXIT_CODES_HELP, ImportFailed, LedgerError
from cli.fhir import fhir
from cli.filters import cohort_filters, filter_query
from cli.follow import follow
from cli.params import as_of_options, json_option
from cli.projector import projections_run
from cli.record import EVENT_TYPE, body_options, build_body, given_fields, types_help
from cli.serve import serve, token
from cli.session import SOURCE, LedgerGroup, Session, default_actor, pass_session
from domain.demo import CASE_REPORT_PATIENT
from domain.errors import ValidationFailed
from domain.events import SERVER_FIELDS
from domain.input_checks import check_storable, parse_json, strip_bom
from projections.ctc import RULES as CTC_RULES
from projections.root import REBUILD_BATCH, OncoLedger, StoreConfig, views_path


@click.group(
    cls=LedgerGroup,
    epilog=EXIT_CODES_HELP
    + " Set ONCOLEDGER_DATABASE_URL=postgresql://... to use PostgreSQL instead of --db.",
)
@click.option(
    "--db",
    envvar="ONCOLEDGER_DB",
    default="oncoledger.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file of the ledger (env ONCOLEDGER_DB).",
)
@click.option(
    "--actor",
    envvar="ONCOLEDGER_ACTOR",
    default=default_actor,
    show_default="the OS user",
    help="Who records: stored on every event (env ONCOLEDGER_ACTOR).",
)
@click.version_option(package_name="oncoledger", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, db: str, actor: str) -> None:
    """OncoLedger: an append-only clinical event ledger for cancer care."""
    try:
        check_storable(actor)  # stored on every event and every access-log entry
    except ValidationFailed as exc:
        message = exc.message.replace("`$`", "the actor")
        raise click.BadParameter(message, param_hint="--actor") from None
    ctx.obj = Session(db=db, actor=actor, ctx=ctx)


def main() -> None:
    cli(prog_name="oncoledger")


def _where(config: StoreConfig) -> str:
    if config.database_url:
        url = urlparse(config.database_url)
        host = url.hostname or "127.0.0.1"
        port = f":{url.port}" if url.port else ""
        place = f"PostgreSQL {host}{port}{url.path or '/'}"
        return f"{place} (schema {config.schema})" if config.schema else place
    ledger = Path(config.sqlite_path or "oncoledger.db").resolve()
    return f"SQLite {ledger} (views in {Path(views_path(config)).resolve()})"


# -- setup --------------------------------------------------------------------------------------


@cli.command()
@pass_session
def init(session: Session) -> None:
    """Create the event store and the views (does nothing to an existing ledger)."""
    status = session.open().views.status()
    click.echo(
        f"ledger ready at {_where(session.config)}: {status['head']} events, "
        f"views at position {status['position']}"
    )


@cli.command()
@click.option("--quiet", is_flag=True, help="Record only; print nothing.")
@click.option(
    "--cohort",
    "cohort_size",
    type=click.IntRange(min=0, max=100_000),
    default=0,
    help="Also record N synthetic patients SYN-00001... (seeded; for `cohort survival`).",
)
@click.option("--seed", type=int, help="Seed of the synthetic cohort [default: 2016].")
@json_option
@pass_session
def demo(session: Session, quiet: bool, cohort_size: int, seed: int | None, as_json: bool) -> None:
    """Record the demo patients (again: a no-op) and show the case report's patient."""
    ledger = session.open()
    recorded = ledger.record_demo(actor=session.actor, source=SOURCE)
    synthetic = record_cohort(ledger, cohort_size, seed, actor=session.actor, quiet=quiet)
    if quiet:
        return
    pid = CASE_REPORT_PATIENT
    history = ledger.history(pid)
    views = {name: ledger.read(pid, name) for name in ("stage", "ctc", "response", "survival")}
    for resource in ("history", *views):
        session.log_read(resource, pid)
    if as_json:
        render.emit_json(
            {
                "recorded": [{"patient_id": p, "new_events": n} for p, n in recorded],
                **({"synthetic_cohort": synthetic} if synthetic else {}),
                "patient_id": pid,
                "history": history,
                **views,
            }
        )
        return
    for patient_id, created in recorded:
        click.echo(f"{patient_id}: {created} new events recorded")
    if synthetic:
        click.echo(
            f"synthetic cohort {synthetic['first']}..{synthetic['last']} (seed "
            f"{synthetic['seed']}): {synthetic['new_events']} new events recorded"
        )
    render.show(render.history_table(pid, history))
    for name, view in views.items():
        click.echo()
        render.show(*render.render_view(name, view))


# -- patients -----------------------------------------------------------------------------------


@cli.group()
def patient() -> None:
    """Register, show and list patients."""


@patient.command("register")
@click.argument("patient_id")
@click.option("--sex", required=True, help="female|male|other|unknown")
@click.option("--birth-year", type=int, help="Year of birth.")
@click.option("--primary-site", help="Primary site [default: esophagus].")
@click.option("--on", "occurred", required=True, metavar="DATE", help="YYYY[-MM[-DD]].")
@click.option("--estimated", is_flag=True, help="The date is estimated.")
@click.option("--note", help="Free text, at most 2,000 characters.")
@click.option("--event-id", type=click.UUID, help="Client-chosen event id (makes retries safe).")
@json_option
@pass_session
def patient_register(
    session: Session,
    patient_id: str,
    sex: str,
    birth_year: int | None,
    primary_site: str | None,
    occurred: str,
    estimated: bool,
    note: str | None,
    event_id: UUID | None,
    as_json: bool,
) -> None:
    """Register PATIENT_ID: the first event of its stream."""
    fields: dict[str, Any] = {"sex": sex}
    if birth_year is not None:
        fields["birth_year"] = birth_year
    if primary_site is not None:
        fields["primary_site"] = primary_site
    body = build_body(
        "patient_registered",
        occurred=occurred,
        estimated=estimated,
        note=note,
        fields=fields,
        event_id=str(event_id or uuid4()),  # known before writing: a retry can name it
    )
    receipt = session.open().register(patient_id, body, actor=session.actor, source=SOURCE)
    _print_receipts(patient_id, ["patient_registered"], [receipt], as_json, single=True)


@patient.command("show")
@click.argument("patient_id")
@json_option
@pass_session
def patient_show(session: Session, patient_id: str, as_json: bool) -> None:
    """One patient's cohort row and stream version."""
    ledger = session.open()
    row = ledger.patient(patient_id)
    version = ledger.version(patient_id)
    session.log_read("patient", patient_id)
    if as_json:
        render.emit_json({**msgspec.to_builtins(row), "version": version})
        return
    render.show(*render.patient_lines(row, version))


@patient.command("list")
@cohort_filters
@click.option("--sort", default="patient_id", show_default=True, help="Column; -column: desc.")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows per page.")
@click.option("--cursor", help="The next_cursor of the previous page.")
@click.option("--count/--no-count", default=True, show_default=True, help="Count all matches.")
@json_option
@pass_session
def patient_list(
    session: Session,
    /,
    sort: str,
    limit: int,
    cursor: str | None,
    count: bool,
    as_json: bool,
    **filters: Any,
) -> None:
    """The cohort index: filter, sort and page through patients."""
    page = session.open().patients(
        filters=filter_query(filters), sort=sort, limit=limit, cursor=cursor, count=count
    )
    session.log_read("patients")
    if as_json:
        render.emit_json(page)
        return
    render.show(*render.patients_page(page))


# -- writes -------------------------------------------------------------------------------------


def _print_receipts(
    patient_id: str, types: list[str], receipts: list[Any], as_json: bool, *, single: bool = False
) -> None:
    if as_json:
        render.emit_json(receipts[0] if single else receipts)
        return
    for type_name, receipt in zip(types, receipts, strict=True):
        click.echo(render.receipt_line(patient_id, type_name, receipt))


@cli.command(epilog=types_help())
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
    _print_receipts(patient_id, [event_type], [receipt], as_json, single=True)


def _read_json(stream: BinaryIO, what: str) -> Any:
    return parse_json(strip_bom(stream.read()), what=what)


@cli.command()
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
    _print_receipts(patient_id, [str(t) for t in types], receipts, as_json)


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@json_option
@pass_session
def import_(session: Session, file: str, as_json: bool) -> None:
    """Import JSON Lines (`-`: stdin): one event per line, each with `patient_id` and `type`.

    Valid lines are stored, invalid ones reported on stderr as `line N: reason`; the exit code
    is 2 when any line failed.
    """
    ledger = session.open()
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
        report = ledger.import_lines(
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


def _target_type(ledger: OncoLedger, patient_id: str, event_id: UUID) -> str:
    return ledger.event(patient_id, event_id).type


@cli.command(epilog=types_help())
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
    ledger = session.open()
    if body_json is not None:
        if occurred is not None or estimated or note is not None or fields:
            raise click.UsageError("give either --body or --on with type options, not both")
        replacement = parse_json(body_json, what="--body")
        if not isinstance(replacement, dict):
            raise click.BadParameter("must be a JSON object", param_hint="'--body'")
        if "type" not in replacement:
            replacement["type"] = event_type or _target_type(ledger, patient_id, event_id)
    else:
        if occurred is None:
            raise click.UsageError("give --body JSON, or --on DATE with the type options")
        replacement = build_body(
            event_type or _target_type(ledger, patient_id, event_id),
            occurred=occurred,
            estimated=estimated,
            note=note,
            fields=fields,
        )
    receipt = ledger.amend(
        patient_id,
        event_id,
        replacement,
        reason=reason,
        actor=session.actor,
        source=SOURCE,
        event_id=amendment_id or uuid4(),
    )
    _print_receipts(patient_id, ["event_amended"], [receipt], as_json, single=True)


@cli.command()
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
    _print_receipts(patient_id, ["event_retracted"], [receipt], as_json, single=True)


# -- reads --------------------------------------------------------------------------------------


@cli.command()
@click.argument("patient_id")
@as_of_options
@json_option
@pass_session
def history(
    session: Session, patient_id: str, as_of: datetime | None, upto: int | None, as_json: bool
) -> None:
    """Every event of PATIENT_ID in stream order, with its envelope."""
    entries = session.open().history(patient_id, as_of=as_of, upto=upto)
    session.log_read("history", patient_id)
    if as_json:
        render.emit_json(entries)
        return
    render.show(render.history_table(patient_id, entries))


@cli.command()
@click.argument("patient_id")
@json_option
@pass_session
def replay(session: Session, patient_id: str, as_json: bool) -> None:
    """Step through PATIENT_ID's events: stage, CTC trend, response and survival after each."""
    steps = session.open().replay(patient_id)
    session.log_read("replay", patient_id)
    if as_json:
        render.emit_json(steps)
        return
    render.show(render.replay_table(patient_id, steps))


_VIEW_HELP = {
    "timeline": "Events in clinical order with their correction status.",
    "stage": "Clinical stage (TNM, AJCC 8 stage group): current, at diagnosis, history, trend.",
    "ctc": "CTC draws per 7.5 mL, trend, clearance, and concordance with the stage trend.",
    "response": "Target lesions and RECIST 1.1-style response assessments.",
    "survival": "Overall survival from diagnosis: status, days, months, censoring.",
}


def _view_command(name: str) -> None:
    def command(
        session: Session,
        patient_id: str,
        as_of: datetime | None,
        upto: int | None,
        as_json: bool,
        rule: str | None = None,
    ) -> None:
        view = session.open().read(patient_id, name, as_of=as_of, upto=upto, rule=rule)
        session.log_read(name, patient_id)
        if as_json:
            render.emit_json(view)
            return
        render.show(*render.render_view(name, view))

    command.__doc__ = _VIEW_HELP[name]
    decorated: Any = pass_session(command)
    decorated = json_option(decorated)
    if name == "ctc":
        decorated = click.option(
            "--rule",
            metavar="|".join(CTC_RULES),
            help="CTC positivity rule [default: ONCOLEDGER_CTC_RULE or ge1].",
        )(decorated)
    decorated = as_of_options(decorated)
    decorated = click.argument("patient_id")(decorated)
    cli.command(name)(decorated)


for _name in _VIEW_HELP:
    _view_command(_name)


# -- projections --------------------------------------------------------------------------------


@cli.group()
def projections() -> None:
    """The stored read models: rebuild them, see how far they have caught up."""


@projections.command("rebuild")
@click.option(
    "--batch",
    default=REBUILD_BATCH,
    show_default=True,
    type=click.IntRange(min=1, max=1_000_000),
    help="Events per committed batch (a killed rebuild resumes after the last one).",
)
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=click.IntRange(min=0, max=64),
    help="Worker processes computing the rows (pays only with idle cores; 0: in this one).",
)
@json_option
@pass_session
def projections_rebuild(session: Session, batch: int, workers: int, as_json: bool) -> None:
    """Drop every view and rebuild it from the first event (progress bar on stderr).

    A rebuild that was interrupted (Ctrl-C, kill -9, a crash) is resumed from its last
    committed batch when run again."""
    views = session.open().views
    err = render.console(stderr=True)
    with Progress(
        TextColumn("rebuilding"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("rebuild", total=views.head())
        applied = views.rebuild(
            batch=batch,
            workers=workers,
            progress=lambda _done, position: progress.update(task, completed=position),
        )
    status = views.status()
    if as_json:
        render.emit_json({"applied": applied, **status})
        return
    click.echo(f"rebuilt the views from {applied} events; position {status['position']}")


@projections.command("status")
@json_option
@pass_session
def projections_status(session: Session, as_json: bool) -> None:
    """The views' tracked position, the ledger's head, and how far behind they are."""
    status = session.open().views.status()
    if as_json:
        render.emit_json(status)
        return
    click.echo(
        f"views at position {status['position']} of {status['head']} ({status['lag']} behind)"
    )


projections.add_command(projections_run)
for _command in (verify, digest, export, audit, access_log, serve, token, fhir, cohort, chart):
    cli.add_command(_command)
cli.add_command(follow)
patient.add_command(patient_erase)
cli.add_command(keys)
cli.add_command(migrate)
cli.add_command(cbioportal)
cbioportal.add_command(export_command(cohort_filters))


if __name__ == "__main__":
    main()
