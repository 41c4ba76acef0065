"""Reading one patient: `history`, `replay` and one command per read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from cli import render, render_views
from cli.params import as_of_options, json_option
from cli.session import Session, pass_session
from projections.ctc import RULES as CTC_RULES

# -- reads --------------------------------------------------------------------------------------


@click.command()
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


@click.command()
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


VIEW_HELP = {
    "timeline": "Events in clinical order with their correction status.",
    "stage": "Clinical stage (TNM, AJCC 8 stage group): current, at diagnosis, history, trend.",
    "ctc": "CTC draws per 7.5 mL, trend, clearance, and concordance with the stage trend.",
    "response": "Target lesions and RECIST 1.1-style response assessments.",
    "survival": "Overall survival from diagnosis: status, days, months, censoring.",
}


def view_command(name: str) -> click.Command:
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
        render.show(*render_views.render_view(name, view))

    command.__doc__ = VIEW_HELP[name]
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
    command_: click.Command = click.command(name)(decorated)
    return command_


VIEW_COMMANDS = [view_command(name) for name in VIEW_HELP]
