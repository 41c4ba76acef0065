"""The study built in memory from a cohort's histories: every file of the folder by its path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from domain import events as ev
from domain.errors import NotFound, ValidationFailed
from projections.cbioportal.formats import clean, clinical_data, clinical_meta, meta_file, tsv_table
from projections.cbioportal.record import PatientRecord
from projections.cbioportal.tables import (
    CANCER_TYPE_RE,
    DEFAULT_CANCER_TYPE,
    DEFAULT_STUDY_ID,
    PATIENT_ATTRIBUTES,
    SAMPLE_ATTRIBUTES,
    STUDY_ID_RE,
    TIMELINES,
    Row,
)


@dataclass
class Study:
    """The study folder's files by relative path, and what is in them."""

    study_id: str
    files: dict[str, str]
    patients: int
    samples: int
    timeline_rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportReport:
    directory: str
    study_id: str
    patients: int
    samples: int
    files: list[str]
    timeline_rows: dict[str, int]
    patient_ids: list[str]


# -- building the study ---------------------------------------------------------------------------


def build_study(
    cohort: Iterable[tuple[str, Sequence[ev.AnyEvent]]],
    *,
    study_id: str = DEFAULT_STUDY_ID,
    cancer_type: str = DEFAULT_CANCER_TYPE,
    name: str | None = None,
    description: str | None = None,
    exported_on: date | None = None,
) -> Study:
    """The study's files for these patients' histories (in the order given)."""
    check_study_id(study_id)
    if not CANCER_TYPE_RE.match(cancer_type):
        raise ValidationFailed(
            f"`cancer_type` {cancer_type!r} must be a lower-case OncoTree code such as esca",
            field="cancer_type",
            rule="cancer_type",
        )
    patients: list[Row] = []
    samples: list[Row] = []
    events: dict[str, list[Row]] = {t.stem: [] for t in TIMELINES}
    for patient_id, history in cohort:
        record = PatientRecord(patient_id, history)
        patients.append(record.patient_row())
        samples.extend(record.sample_rows())
        for stem, rows in record.timeline_rows().items():
            events[stem].extend(rows)
    if not patients:
        raise NotFound("no patient to export: the cohort is empty", field="patients")
    day = exported_on or datetime.now(UTC).date()
    files: dict[str, str] = {
        "meta_study.txt": meta_file(
            {
                "type_of_cancer": cancer_type,
                "cancer_study_identifier": study_id,
                "name": clean(name or "OncoLedger cohort"),
                "description": clean(
                    description
                    or f"Exported from OncoLedger on {day.isoformat()}: {len(patients)} "
                    f"patients, {len(samples)} samples. Timeline days count from diagnosis; "
                    "partial dates are imputed (YYYY-MM as the 15th, YYYY as 1 July)."
                ),
                "add_global_case_list": "true",
            }
        ),
        "meta_clinical_patient.txt": clinical_meta(study_id, "PATIENT_ATTRIBUTES", "patient"),
        "data_clinical_patient.txt": clinical_data(PATIENT_ATTRIBUTES, patients),
        "meta_clinical_sample.txt": clinical_meta(study_id, "SAMPLE_ATTRIBUTES", "sample"),
        "data_clinical_sample.txt": clinical_data(SAMPLE_ATTRIBUTES, samples),
    }
    counts: dict[str, int] = {}
    for timeline in TIMELINES:
        rows = sorted(events[timeline.stem], key=lambda r: (r["PATIENT_ID"], r["START_DATE"]))
        if not rows:
            continue  # a file with a header and no rows would only add an empty track
        counts[timeline.stem] = len(rows)
        files[f"meta_timeline_{timeline.stem}.txt"] = meta_file(
            {
                "cancer_study_identifier": study_id,
                "genetic_alteration_type": "CLINICAL",
                "datatype": "TIMELINE",
                "data_filename": f"data_timeline_{timeline.stem}.txt",
            }
        )
        files[f"data_timeline_{timeline.stem}.txt"] = tsv_table(
            timeline.header,
            [{**row, "EVENT_TYPE": timeline.event_type} for row in rows],
            missing="",
        )
    return Study(
        study_id=study_id,
        files=files,
        patients=len(patients),
        samples=len(samples),
        timeline_rows=counts,
    )


def check_study_id(study_id: str) -> None:
    if not STUDY_ID_RE.match(study_id):
        raise ValidationFailed(
            f"`study_id` {study_id!r} must be 1-255 lower-case letters, digits and underscores "
            "(cBioPortal's cancer_study_identifier)",
            field="study_id",
            rule="study_id",
        )
