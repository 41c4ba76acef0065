"""`oncoledger fhir export PATIENT`: the patient's record as a FHIR R4 / mCODE STU4 Bundle."""

from __future__ import annotations

from datetime import datetime

import click

from cli import render
from cli.params import as_of_options, json_option
from cli.session import Session, pass_session
from projections.fhir import export_fhir


@click.group()
def fhir() -> None:
    """FHIR R4 (4.0.1) interchange, mapped to the mCODE STU4 profiles."""


@fhir.command("export")
@click.argument("patient_id")
@as_of_options
@json_option
@pass_session
def fhir_export(
    session: Session, patient_id: str, as_of: datetime | None, upto: int | None, as_json: bool
) -> None:
    """Print PATIENT_ID's record as one FHIR Bundle (type collection) on stdout.

    Amended events appear as their current version, retracted ones as entered-in-error, each
    correction with a Provenance. Redirect it to a file: `oncoledger fhir export P1 > p1.json`.
    The output is JSON with or without --json (accepted like on every read command).
    """
    bundle = export_fhir(session.open(), patient_id, as_of=as_of, upto=upto)
    session.log_read("fhir", patient_id)
    render.emit_json(bundle)
