"""`oncoledger cbioportal export DIR`: the cohort as a study folder cBioPortal imports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli import render
from cli.filters import filter_query
from cli.params import json_option
from cli.session import Session, pass_session
from projections.cbioportal import DEFAULT_CANCER_TYPE, DEFAULT_STUDY_ID, export_study


@click.group()
def cbioportal() -> None:
    """Export the cohort for cBioPortal."""


def export_command(cohort_filters: Callable[[Any], Any]) -> click.Command:
    """`cbioportal export`, with the cohort filter options of `patient list`."""

    @click.command("export")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option(
        "--study-id",
        default=DEFAULT_STUDY_ID,
        show_default=True,
        help="cancer_study_identifier: lower-case letters, digits and underscores.",
    )
    @click.option(
        "--cancer-type",
        default=DEFAULT_CANCER_TYPE,
        show_default=True,
        help="The study's type_of_cancer (an OncoTree code in lower case).",
    )
    @click.option("--name", help="The study's name [default: OncoLedger cohort].")
    @cohort_filters
    @json_option
    @pass_session
    def cbioportal_export(
        session: Session,
        /,
        directory: str,
        study_id: str,
        cancer_type: str,
        name: str | None,
        as_json: bool,
        **filters: Any,
    ) -> None:
        """Write the cohort (all patients, or those the filters select) as a cBioPortal study.

        DIRECTORY must be new or empty. It gets meta_study.txt, the clinical patient and sample
        files and one timeline per event type (treatment, surgery, CTC lab tests, imaging,
        status and staging, specimens), days counted from diagnosis. The filters are those of
        `patient list`. Every exported patient's read is recorded in the access log.
        """
        query = filter_query(filters)
        service = session.open()
        report = export_study(
            service,
            directory,
            study_id=study_id,
            filters=query,
            cancer_type=cancer_type,
            name=name,
        )
        for patient_id in report.patient_ids:
            session.log_read("cbioportal", patient_id)
        if as_json:
            render.emit_json(report)
            return
        click.echo(
            f"study {report.study_id}: {report.patients} patients, {report.samples} samples, "
            f"{len(report.files)} files in {report.directory}"
        )

    return cbioportal_export
