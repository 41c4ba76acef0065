"""`oncoledger`: the command line, a thin shell over `projections.root.OncoLedger`.

Each command parses its arguments, makes one call to the service layer and formats the result.
The ledger is opened on first use and closed when the command ends.
"""

from __future__ import annotations

import click

from cli.admin import demo, init, projections
from cli.audit import access_log, audit, digest, export, verify
from cli.cbioportal import cbioportal, export_command
from cli.chart import chart
from cli.cohort import cohort
from cli.erasure import keys, migrate, patient_erase
from cli.errors import EXIT_CODES_HELP
from cli.fhir import fhir
from cli.filters import cohort_filters
from cli.follow import follow
from cli.patients import patient
from cli.projector import projections_run
from cli.reads import VIEW_COMMANDS, history, replay
from cli.serve import serve, token
from cli.session import LedgerGroup, Session, default_actor
from cli.writes import amend, append, import_, record, retract
from domain.errors import ValidationFailed
from domain.input_checks import check_storable


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


projections.add_command(projections_run)
patient.add_command(patient_erase)
cbioportal.add_command(export_command(cohort_filters))
for _command in (
    *(init, demo, projections, patient),
    *(record, append, import_, amend, retract),
    *(history, replay, *VIEW_COMMANDS),
    *(verify, digest, export, audit, access_log, serve, token, fhir, cohort, chart),
    *(follow, keys, migrate, cbioportal),
):
    cli.add_command(_command)


if __name__ == "__main__":
    main()
