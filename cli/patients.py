"""`oncoledger patient register|show|list`: patients and the cohort index."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import click
import msgspec

from cli import render, render_reports
from cli.filters import cohort_filters, filter_query
from cli.params import json_option
from cli.record import build_body
from cli.session import SOURCE, Session, pass_session
from cli.writes import print_receipts

# -- patients -----------------------------------------------------------------------------------


@click.group()
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
    print_receipts(patient_id, ["patient_registered"], [receipt], as_json, single=True)


@patient.command("show")
@click.argument("patient_id")
@json_option
@pass_session
def patient_show(session: Session, patient_id: str, as_json: bool) -> None:
    """One patient's cohort row and stream version."""
    service = session.open()
    row = service.patient(patient_id)
    version = service.version(patient_id)
    session.log_read("patient", patient_id)
    if as_json:
        render.emit_json({**msgspec.to_builtins(row), "version": version})
        return
    render.show(*render_reports.patient_lines(row, version))


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
    render.show(*render_reports.patients_page(page))
