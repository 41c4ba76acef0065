"""`oncoledger projections run`: the projector as a worker process of its own."""

from __future__ import annotations

import signal

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
    # The stop signals are taken by `sigwait` in this thread, never by a handler: a Python
    # handler runs between two bytecodes of whatever this thread was doing, and one that set
    # the projector's `threading.Event` while this thread held that event's lock (in its wait
    # or clear) would deadlock the process (seen: a SIGTERM'd projector that never exited).
    # They are blocked before the store is opened, so every thread started from here on (the
    # projector's, a connection pool's) inherits the mask and none of them takes the signal.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    if not once:
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    ledger = session.open()
    ledger.project_inline = False
    # A one-off run applies what is recorded whether or not another projector is active (the
    # tracking row keeps each event applied once); a long-running one stands by while another
    # is active on the same PostgreSQL database, and takes over when it stops.
    projector = Projector(ledger.views, poll=poll, exclusive=not once)
    if once:
        while projector.step():
            pass
    else:
        click.echo("projector running; Ctrl-C stops it", err=True)
        projector.start()
        signal.sigwait(stop_signals)
        # A second signal while the last batch ends stops the process as the defaults do.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        projector.stop()
    status = ledger.projection_status()
    if as_json:
        render.emit_json({"applied": projector.applied, **status})
        return
    click.echo(
        f"applied {projector.applied} events; views at position {status['position']} of "
        f"{status['head']} ({status['lag']} behind)"
    )
