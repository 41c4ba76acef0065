"""`oncoledger projections run`: the projector as a worker process of its own."""

from __future__ import annotations

import signal
from types import FrameType

import click

from cli import render
from cli.params import json_option
from cli.session import Session, pass_session
from projections.projector import POLL_SECONDS, Projector


@click.command("run")
@click.option(
    "--once", is_flag=True, help="Apply what is recorded now, then exit (a cron-style run)."
)
@click.option(
    "--poll",
    default=POLL_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.01, max=60),
    help="Seconds between looks for new events.",
)
@json_option
@pass_session
def projections_run(session: Session, once: bool, poll: float, as_json: bool) -> None:
    """Keep the views current, until stopped (Ctrl-C or SIGTERM).

    Run it beside `oncoledger serve --no-projector`; on PostgreSQL several may run at once
    (each batch is applied by exactly one of them)."""
    ledger = session.open()
    ledger.project_inline = False
    projector = Projector(ledger.views, poll=poll)
    if once:
        while projector.step():
            pass
    else:

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            projector.request_stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        click.echo("projector running; Ctrl-C stops it", err=True)
        projector.run()
    status = ledger.projection_status()
    if as_json:
        render.emit_json({"applied": projector.applied, **status})
        return
    click.echo(
        f"applied {projector.applied} events; views at position {status['position']} of "
        f"{status['head']} ({status['lag']} behind)"
    )
