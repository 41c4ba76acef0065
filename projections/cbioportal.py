"""A cBioPortal study folder from a cohort: clinical patient and sample files, timelines.

The layout follows cBioPortal's File-Formats document (docs/File-Formats.md in
cBioPortal/cbioportal): `meta_study.txt`; a meta file plus a tab-separated data file for the
patient attributes, the sample attributes and each timeline event type. Clinical data files
open with the four `#` rows the document requires (display names, descriptions, datatypes
STRING / NUMBER / BOOLEAN, priorities) above the upper-case attribute names; a missing value
is `NA`. Timeline files start with PATIENT_ID, START_DATE, STOP_DATE, EVENT_TYPE, dates in
whole days from diagnosis (STOP_DATE blank for events at one point in time).

Choices where the document and the issue are silent:
- Day 0 is the survival model's diagnosis date (first `diagnosis_confirmed`, else the first
  malignant biopsy); a patient with neither counts from the first event in clinical order
  (`TIMELINE_ZERO` says which). Partial dates are imputed the survival model's way (`YYYY-MM`
  the 15th, `YYYY` 1 July) and the row says `DATE_APPROXIMATE: yes`, as it does for a date the
  abstractor estimated. Events before diagnosis get negative days.
- One sample per biopsy in force, `<patient>-S<n>` in clinical order; a patient without a
  biopsy gets one sample `<patient>-S1` (`SAMPLE_SOURCE` says so), because cBioPortal needs a
  sample for every patient it shows. cBioPortal's importer refuses sample ids over 63
  characters, so such a patient id is refused here rather than shortened.
- CTC draws are LAB_TEST rows with TEST `CTC` and RESULT the count per 7.5 mL (numeric, so
  cBioPortal draws a line chart; the raw count and volume are columns beside it).
- Cancer type: OncoTree main type "Esophagogastric Cancer"; detailed type and ONCOTREE_CODE from
  the histology (ESCC, ESCA) when the primary site is the esophagus, else NA.
- Amended events are exported as amended, retracted ones are left out (the read models' rule).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain import events as ev
from domain.dates import parse
from domain.errors import Conflict, NotFound, ValidationFailed
from projections import readmodels
from projections.ctc import CtcView
from projections.effective import Item, in_force, of_type
from projections.response import ResponseView
from projections.stage import StageView
from projections.survival import SurvivalView

if TYPE_CHECKING:
    from projections.root import OncoLedger

DEFAULT_STUDY_ID = "oncoledger"
DEFAULT_CANCER_TYPE = "esca"
# cBioPortal's importer: study ids of lower-case letters, digits and underscores, at most 255;
# sample ids of at most 63 characters.
STUDY_ID_PATTERN = r"^[a-z0-9_]{1,255}$"
MAX_SAMPLE_ID_LENGTH = 63
NA = "NA"
_STUDY_ID = re.compile(STUDY_ID_PATTERN)
_CANCER_TYPE = re.compile(r"^[a-z0-9_]{1,63}$")
_COHORT_PAGE = 1000

MAIN_TYPE = "Esophagogastric Cancer"
# OncoTree detailed types of the esophagus by our histology codes.
ONCOTREE: dict[str, tuple[str, str]] = {
    "squamous_cell_carcinoma": ("ESCC", "Esophageal Squamous Cell Carcinoma"),
    "adenocarcinoma": ("ESCA", "Esophageal Adenocarcinoma"),
}
MODALITIES: dict[str, str] = {
    "ct": "CT",
    "mri": "MRI",
    "ultrasound": "Ultrasound",
    "contrast_ultrasound": "Contrast-enhanced ultrasound",
    "pet_ct": "PET-CT",
    "xray": "X-ray",
    "endoscopy": "Endoscopy",
}
DECLINED: dict[str, str] = {
    "all_antitumor": "all antitumor therapy",
    "chemotherapy": "chemotherapy",
    "radiotherapy": "radiotherapy",
    "surgery": "surgery",
    "other": "other therapy",
}


@dataclass(frozen=True)
class Attribute:
    """One clinical attribute: the five header rows of its column."""

    name: str
    display: str
    description: str
    datatype: str = "STRING"
    priority: int = 1


PATIENT_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("PATIENT_ID", "Patient Identifier", "Pseudonymous patient id in the ledger"),
    Attribute("SEX", "Sex", "Sex as registered"),
    Attribute(
        "AGE",
        "Diagnosis Age",
        "Age in years at diagnosis: the diagnosis year minus the birth year",
        "NUMBER",
    ),
    Attribute("TUMOR_SITE", "Tumor Site", "Primary site as registered"),
    Attribute("HISTOLOGY", "Histology", "Histology of the diagnosis in force"),
    Attribute("TUMOR_GRADE", "Tumor Grade", "Histologic grade of the diagnosis (G1-G3, GX)"),
    Attribute("STAGE_GROUP", "Stage Group", "Current AJCC 8th edition stage group", priority=10),
    Attribute("STAGE_TNM", "TNM", "Current TNM, e.g. cT4N2M1"),
    Attribute("STAGE_GROUP_AT_DIAGNOSIS", "Stage Group at Diagnosis", "First AJCC 8th stage group"),
    Attribute(
        "STAGE_TREND",
        "Stage Trend",
        "First to current stage group: unchanged, improved, worsened or insufficient_data",
    ),
    Attribute("CTC_DRAWS", "CTC Draws", "Number of CTC counts in force", "NUMBER"),
    Attribute(
        "CTC_BASELINE_PER_7_5_ML",
        "CTC Baseline (per 7.5 mL)",
        "First CTC count, normalised to 7.5 mL of blood",
        "NUMBER",
    ),
    Attribute(
        "CTC_LATEST_PER_7_5_ML",
        "CTC Latest (per 7.5 mL)",
        "Latest CTC count, normalised to 7.5 mL of blood",
        "NUMBER",
    ),
    Attribute(
        "CTC_TREND",
        "CTC Trend",
        "decreasing, increasing, stable, fluctuating or insufficient_data (per 7.5 mL)",
        priority=10,
    ),
    Attribute(
        "CTC_CLEARED",
        "CTC Cleared",
        "An earlier draw was positive and the latest is not",
        "BOOLEAN",
    ),
    Attribute("CTC_RULE", "CTC Positivity Rule", "ge1, ge3 or ge5 CTCs per 7.5 mL"),
    Attribute(
        "CONCORDANCE",
        "CTC-Stage Concordance",
        "Whether the CTC trend agrees with the stage trend: concordant, discordant or undetermined",
        priority=10,
    ),
    Attribute("CONCORDANCE_SUMMARY", "Concordance Summary", "The concordance in one sentence"),
    Attribute("RECIST_RESPONSE", "Target Lesion Response", "Latest RECIST 1.1 style category"),
    Attribute("OS_STATUS", "Overall Survival Status", "1:DECEASED or 0:LIVING"),
    Attribute(
        "OS_MONTHS",
        "Overall Survival (Months)",
        "Months from diagnosis to death or last contact (days / 30.4375)",
        "NUMBER",
    ),
    Attribute(
        "OS_APPROXIMATE",
        "Overall Survival Approximate",
        "The survival time rests on an imputed or estimated date",
        "BOOLEAN",
    ),
    Attribute(
        "TIMELINE_ZERO",
        "Timeline Day 0",
        "What day 0 of the timeline is: diagnosis, or the first event when there is none",
    ),
)

SAMPLE_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("PATIENT_ID", "Patient Identifier", "Pseudonymous patient id in the ledger"),
    Attribute("SAMPLE_ID", "Sample Identifier", "<patient>-S<n>: the n-th biopsy in force"),
    Attribute("CANCER_TYPE", "Cancer Type", "OncoTree main type"),
    Attribute("CANCER_TYPE_DETAILED", "Cancer Type Detailed", "OncoTree detailed type"),
    Attribute("ONCOTREE_CODE", "Oncotree Code", "OncoTree code of the detailed type"),
    Attribute(
        "SAMPLE_TYPE",
        "Sample Type",
        "Primary when the biopsy site names the primary site, else NA",
    ),
    Attribute(
        "SAMPLE_SOURCE",
        "Sample Source",
        "biopsy, or patient when no biopsy is recorded (one sample stands for the patient)",
    ),
    Attribute("SPECIMEN_SITE", "Specimen Site", "Biopsy site"),
    Attribute("SPECIMEN_METHOD", "Specimen Method", "Biopsy method and guidance"),
    Attribute("SAMPLE_HISTOLOGY", "Sample Histology", "Histology the biopsy found"),
    Attribute("SAMPLE_GRADE", "Sample Grade", "Grade the biopsy found"),
    Attribute(
        "DAYS_FROM_DIAGNOSIS",
        "Days from Diagnosis",
        "Day of the biopsy counted from diagnosis (imputed for partial dates)",
        "NUMBER",
    ),
)

_TIMELINE_START = ("PATIENT_ID", "START_DATE", "STOP_DATE", "EVENT_TYPE")
_TAIL = ("DATE_APPROXIMATE", "SOURCE_EVENT_ID")


@dataclass(frozen=True)
class Timeline:
    """One timeline event type: its file stem, EVENT_TYPE value and columns after the four."""

    stem: str
    event_type: str
    columns: tuple[str, ...]

    @property
    def header(self) -> tuple[str, ...]:
        return (*_TIMELINE_START, *self.columns, *_TAIL)


TIMELINES: tuple[Timeline, ...] = (
    Timeline(
        "specimen",
        "SPECIMEN",
        ("SAMPLE_ID", "SPECIMEN_SITE", "SPECIMEN_TYPE", "METHOD", "HISTOLOGY", "GRADE"),
    ),
    Timeline("surgery", "SURGERY", ("SUBTYPE", "PROCEDURE", "SITE", "TARGET_LESION", "INTENT")),
    Timeline("status", "STATUS", ("STATUS", "STAGE_GROUP", "TNM", "STAGING_SYSTEM", "DETAIL")),
    Timeline(
        "imaging",
        "IMAGING",
        (
            "DIAGNOSTIC_TYPE",
            "DIAGNOSTIC_TYPE_DETAILED",
            "RESULT",
            "LESIONS",
            "TARGET_SUM_MM",
            "RECIST_CATEGORY",
        ),
    ),
    Timeline(
        "lab_test",
        "LAB_TEST",
        (
            "TEST",
            "RESULT",
            "UNIT",
            "CTC_COUNT",
            "BLOOD_VOLUME_ML",
            "POSITIVE",
            "POSITIVITY_RULE",
            "ASSAY",
            "BLOOD_SAMPLE",
        ),
    ),
    Timeline(
        "treatment",
        "TREATMENT",
        (
            "TREATMENT_TYPE",
            "SUBTYPE",
            "AGENT",
            "REGIMEN",
            "COURSES",
            "INTENT",
            "TARGET",
            "DOSE_GY",
            "FRACTIONS",
        ),
    ),
)
TIMELINE_BY_STEM: dict[str, Timeline] = {t.stem: t for t in TIMELINES}

Row = dict[str, Any]


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
    if not _CANCER_TYPE.match(cancer_type):
        raise ValidationFailed(
            f"`cancer_type` {cancer_type!r} must be a lower-case OncoTree code such as esca",
            field="cancer_type",
            rule="cancer_type",
        )
    patients: list[Row] = []
    samples: list[Row] = []
    events: dict[str, list[Row]] = {t.stem: [] for t in TIMELINES}
    for patient_id, history in cohort:
        record = _PatientRecord(patient_id, history)
        patients.append(record.patient_row())
        samples.extend(record.sample_rows())
        for stem, rows in record.timeline_rows().items():
            events[stem].extend(rows)
    if not patients:
        raise NotFound("no patient to export: the cohort is empty", field="patients")
    day = exported_on or datetime.now(UTC).date()
    files: dict[str, str] = {
        "meta_study.txt": _meta(
            {
                "type_of_cancer": cancer_type,
                "cancer_study_identifier": study_id,
                "name": _clean(name or "OncoLedger cohort"),
                "description": _clean(
                    description
                    or f"Exported from OncoLedger on {day.isoformat()}: {len(patients)} "
                    f"patients, {len(samples)} samples. Timeline days count from diagnosis; "
                    "partial dates are imputed (YYYY-MM as the 15th, YYYY as 1 July)."
                ),
                "add_global_case_list": "true",
            }
        ),
        "meta_clinical_patient.txt": _clinical_meta(study_id, "PATIENT_ATTRIBUTES", "patient"),
        "data_clinical_patient.txt": _clinical_data(PATIENT_ATTRIBUTES, patients),
        "meta_clinical_sample.txt": _clinical_meta(study_id, "SAMPLE_ATTRIBUTES", "sample"),
        "data_clinical_sample.txt": _clinical_data(SAMPLE_ATTRIBUTES, samples),
    }
    counts: dict[str, int] = {}
    for timeline in TIMELINES:
        rows = sorted(events[timeline.stem], key=lambda r: (r["PATIENT_ID"], r["START_DATE"]))
        if not rows:
            continue  # a file with a header and no rows would only add an empty track
        counts[timeline.stem] = len(rows)
        files[f"meta_timeline_{timeline.stem}.txt"] = _meta(
            {
                "cancer_study_identifier": study_id,
                "genetic_alteration_type": "CLINICAL",
                "datatype": "TIMELINE",
                "data_filename": f"data_timeline_{timeline.stem}.txt",
            }
        )
        files[f"data_timeline_{timeline.stem}.txt"] = _table(
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
    if not _STUDY_ID.match(study_id):
        raise ValidationFailed(
            f"`study_id` {study_id!r} must be 1-255 lower-case letters, digits and underscores "
            "(cBioPortal's cancer_study_identifier)",
            field="study_id",
            rule="study_id",
        )


class _PatientRecord:
    """One patient's rows, from the read models and the events in force."""

    def __init__(self, patient_id: str, history: Sequence[ev.AnyEvent]) -> None:
        self.patient_id = patient_id
        views, self.row = readmodels.project(patient_id, history)
        self.stage: StageView = views["stage"]  # type: ignore[assignment]
        self.ctc: CtcView = views["ctc"]  # type: ignore[assignment]
        self.response: ResponseView = views["response"]  # type: ignore[assignment]
        self.survival: SurvivalView = views["survival"]  # type: ignore[assignment]
        self.items = in_force(history)
        self.diagnosis = next(
            (body for _, body in of_type(self.items, ev.DiagnosisConfirmed)), None
        )
        if self.survival.diagnosis_date is not None:
            self.zero, self.zero_is = parse(self.survival.diagnosis_date).imputed, "diagnosis"
        elif self.items:
            self.zero, self.zero_is = self.items[0].day, "first event"
        else:
            self.zero, self.zero_is = date.today(), "none"
        self.biopsies = of_type(self.items, ev.Biopsy)
        self.sample_ids = [f"{patient_id}-S{n}" for n in range(1, len(self.biopsies) + 1)]
        longest = self.sample_ids[-1] if self.sample_ids else f"{patient_id}-S1"
        if len(longest) > MAX_SAMPLE_ID_LENGTH:
            raise ValidationFailed(
                f"patient {patient_id}: sample id {longest!r} would be longer than the "
                f"{MAX_SAMPLE_ID_LENGTH} characters cBioPortal accepts; leave this patient out "
                "with the cohort filters",
                field="patient_id",
                rule="sample_id_length",
            )

    def day(self, occurred: str) -> int:
        return (parse(occurred).imputed - self.zero).days

    # -- clinical attributes ---------------------------------------------------------------------

    def patient_row(self) -> Row:
        row, stage, ctc, survival = self.row, self.stage, self.ctc, self.survival
        age = None
        if row.birth_year is not None and survival.diagnosis_date is not None:
            age = parse(survival.diagnosis_date).year - row.birth_year
        os_status = None
        if survival.os_months is not None:
            os_status = "1:DECEASED" if survival.status == "dead" else "0:LIVING"
        return {
            "PATIENT_ID": self.patient_id,
            "SEX": _words(row.sex).capitalize() if row.sex else None,
            "AGE": age,
            "TUMOR_SITE": row.primary_site,
            "HISTOLOGY": _words(row.histology).capitalize() if row.histology else None,
            "TUMOR_GRADE": self.diagnosis.grade if self.diagnosis else None,
            "STAGE_GROUP": stage.current.stage_group if stage.current else None,
            "STAGE_TNM": stage.current.tnm if stage.current else None,
            "STAGE_GROUP_AT_DIAGNOSIS": (
                stage.at_diagnosis.stage_group if stage.at_diagnosis else None
            ),
            "STAGE_TREND": stage.trend,
            "CTC_DRAWS": len(ctc.draws),
            "CTC_BASELINE_PER_7_5_ML": ctc.draws[0].per_7_5_ml if ctc.draws else None,
            "CTC_LATEST_PER_7_5_ML": ctc.latest_per_7_5_ml,
            "CTC_TREND": ctc.trend,
            "CTC_CLEARED": ctc.cleared,
            "CTC_RULE": ctc.rule,
            "CONCORDANCE": ctc.concordance.status,
            "CONCORDANCE_SUMMARY": ctc.concordance.summary,
            "RECIST_RESPONSE": self.response.current_category,
            "OS_STATUS": os_status,
            "OS_MONTHS": survival.os_months,
            "OS_APPROXIMATE": survival.approximate if survival.os_months is not None else None,
            "TIMELINE_ZERO": self.zero_is,
        }

    def sample_rows(self) -> list[Row]:
        histology = self.row.histology
        esophagus = "esophag" in (self.row.primary_site or "").lower()
        code, detailed = ONCOTREE.get(histology or "", (None, None)) if esophagus else (None, None)
        common: Row = {
            "PATIENT_ID": self.patient_id,
            "CANCER_TYPE": MAIN_TYPE if esophagus else None,
            "CANCER_TYPE_DETAILED": detailed,
            "ONCOTREE_CODE": code,
        }
        if not self.biopsies:
            return [{**common, "SAMPLE_ID": f"{self.patient_id}-S1", "SAMPLE_SOURCE": "patient"}]
        site = (self.row.primary_site or "").lower()
        rows = []
        for sample_id, (item, biopsy) in zip(self.sample_ids, self.biopsies, strict=True):
            primary = bool(site) and site in biopsy.site.lower()
            rows.append(
                {
                    **common,
                    "SAMPLE_ID": sample_id,
                    "SAMPLE_TYPE": "Primary" if primary else None,
                    "SAMPLE_SOURCE": "biopsy",
                    "SPECIMEN_SITE": biopsy.site,
                    "SPECIMEN_METHOD": _method(biopsy),
                    "SAMPLE_HISTOLOGY": _words(biopsy.histology) if biopsy.histology else None,
                    "SAMPLE_GRADE": biopsy.grade,
                    "DAYS_FROM_DIAGNOSIS": self.day(item.body.occurred),
                }
            )
        return rows

    # -- timelines ---------------------------------------------------------------------------------

    def timeline_rows(self) -> dict[str, list[Row]]:
        rows: dict[str, list[Row]] = {t.stem: [] for t in TIMELINES}
        samples = {
            item.event_id: sid
            for (item, _), sid in zip(self.biopsies, self.sample_ids, strict=True)
        }
        stages = {a.event_id: a for a in self.stage.history}
        draws = {d.event_id: d for d in self.ctc.draws}
        recist = {eid: a for a in self.response.assessments for eid in a.event_ids}
        for item in self.items:
            for stem, row in self._rows_of(item, samples, stages, draws, recist):
                rows[stem].append(
                    {
                        "PATIENT_ID": self.patient_id,
                        "START_DATE": self.day(item.body.occurred),
                        "DATE_APPROXIMATE": (
                            "yes" if item.approximate or item.body.date_estimated else "no"
                        ),
                        "SOURCE_EVENT_ID": str(item.event_id),
                        **row,
                    }
                )
        return rows

    def _rows_of(
        self,
        item: Item,
        samples: dict[Any, str],
        stages: dict[Any, Any],
        draws: dict[Any, Any],
        recist: dict[Any, Any],
    ) -> Iterator[tuple[str, Row]]:
        body = item.body
        if isinstance(body, ev.Biopsy):
            yield (
                "specimen",
                {
                    "SAMPLE_ID": samples[item.event_id],
                    "SPECIMEN_SITE": body.site,
                    "SPECIMEN_TYPE": "tissue",
                    "METHOD": _method(body),
                    "HISTOLOGY": _words(body.histology) if body.histology else None,
                    "GRADE": body.grade,
                },
            )
        elif isinstance(body, ev.DiagnosisConfirmed):
            yield (
                "status",
                {
                    "STATUS": f"Diagnosis: {_words(body.histology)}",
                    "DETAIL": f"grade {body.grade}; location {body.tumor_location}; basis "
                    f"{body.basis}" + (f" ({body.method})" if body.method else ""),
                },
            )
        elif isinstance(body, ev.Staging):
            assessment = stages.get(item.event_id)
            group = assessment.stage_group if assessment else body.stage_group
            tnm = assessment.tnm if assessment else f"{body.context}{body.t}{body.n}{body.m}"
            yield (
                "status",
                {
                    "STATUS": f"Stage {group} ({tnm})",
                    "STAGE_GROUP": group,
                    "TNM": tnm,
                    "STAGING_SYSTEM": "AJCC 8th edition",
                },
            )
        elif isinstance(body, ev.TherapyDeclined):
            yield "status", {"STATUS": f"Declined {DECLINED[body.scope]}", "DETAIL": body.reason}
        elif isinstance(body, ev.FollowUp):
            status = "Lost to follow-up" if body.status == "lost_to_follow_up" else "Alive"
            yield "status", {"STATUS": status}
        elif isinstance(body, ev.Death):
            yield "status", {"STATUS": "DECEASED", "DETAIL": f"cause: {body.cause}"}
        elif isinstance(body, ev.Imaging):
            assessment = recist.get(item.event_id)
            yield (
                "imaging",
                {
                    "DIAGNOSTIC_TYPE": MODALITIES.get(body.modality, body.modality),
                    "DIAGNOSTIC_TYPE_DETAILED": body.region,
                    "RESULT": body.finding,
                    "LESIONS": len(body.lesions) if body.lesions else None,
                    "TARGET_SUM_MM": assessment.sum_mm if assessment else None,
                    "RECIST_CATEGORY": assessment.category if assessment else None,
                },
            )
        elif isinstance(body, ev.CtcCount):
            draw = draws.get(item.event_id)
            yield (
                "lab_test",
                {
                    "TEST": "CTC",
                    "RESULT": draw.per_7_5_ml if draw else body.count * 7.5 / body.blood_volume_ml,
                    "UNIT": "cells per 7.5 mL",
                    "CTC_COUNT": body.count,
                    "BLOOD_VOLUME_ML": body.blood_volume_ml,
                    "POSITIVE": ("yes" if draw.positive else "no") if draw else None,
                    "POSITIVITY_RULE": self.ctc.rule,
                    "ASSAY": body.assay,
                    "BLOOD_SAMPLE": body.sample_id,
                },
            )
        elif isinstance(body, ev.Chemotherapy):
            start = self.day(body.occurred)
            stop = max(start, self.day(body.ended)) if body.ended else None
            for agent in body.agents or [body.regimen]:
                yield (
                    "treatment",
                    {
                        "STOP_DATE": stop,
                        "TREATMENT_TYPE": "Medical Therapy",
                        "SUBTYPE": "Chemotherapy",
                        "AGENT": agent,
                        "REGIMEN": body.regimen,
                        "COURSES": body.courses,
                        "INTENT": body.intent,
                    },
                )
        elif isinstance(body, ev.Radiotherapy):
            yield (
                "treatment",
                {
                    "TREATMENT_TYPE": "Radiation Therapy",
                    "SUBTYPE": "Radiotherapy",
                    "AGENT": f"{_number(body.dose_gy)} Gy in {body.fractions} fractions",
                    "INTENT": body.intent,
                    "TARGET": body.target,
                    "DOSE_GY": body.dose_gy,
                    "FRACTIONS": body.fractions,
                },
            )
        elif isinstance(body, ev.Ablation):
            yield (
                "surgery",
                {
                    "SUBTYPE": "Ablation",
                    "PROCEDURE": f"{_words(body.modality).capitalize()} ablation",
                    "SITE": body.site,
                    "TARGET_LESION": body.target_lesion_id,
                },
            )
        elif isinstance(body, ev.Surgery):
            yield (
                "surgery",
                {"SUBTYPE": "Surgery", "PROCEDURE": body.procedure, "INTENT": body.intent},
            )


# -- writing ---------------------------------------------------------------------------------


def cohort_ids(app: OncoLedger, filters: dict[str, Any] | None = None) -> list[str]:
    """The patients the cohort filters (those of `patient list`) select, in id order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = app.patients(filters=filters or {}, limit=_COHORT_PAGE, cursor=cursor)
        ids.extend(row.patient_id for row in page.patients)
        cursor = page.next_cursor
        if cursor is None:
            return ids


def export_study(
    app: OncoLedger,
    directory: str | os.PathLike[str],
    *,
    study_id: str = DEFAULT_STUDY_ID,
    filters: dict[str, Any] | None = None,
    cancer_type: str = DEFAULT_CANCER_TYPE,
    name: str | None = None,
) -> ExportReport:
    """Write the study folder for the filtered cohort: all of it, or nothing.

    `directory` must not exist yet, or be empty; its parent must exist."""
    check_study_id(study_id)
    target = Path(directory)
    _check_target(target)
    ids = cohort_ids(app, filters)
    if not ids:
        raise NotFound(
            "no patient matches the cohort filters: nothing was written", field="filters"
        )
    study = build_study(
        ((pid, app.history(pid)) for pid in ids),
        study_id=study_id,
        cancer_type=cancer_type,
        name=name,
    )
    write_study(study, target)
    return ExportReport(
        directory=str(target),
        study_id=study_id,
        patients=study.patients,
        samples=study.samples,
        files=sorted(study.files),
        timeline_rows=study.timeline_rows,
        patient_ids=ids,
    )


def write_study(study: Study, target: Path) -> None:
    """The files land together: written into a hidden folder beside `target`, then moved."""
    _check_target(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, text in study.files.items():
            (staging / name).write_text(text, encoding="utf-8", newline="\n")
        if target.exists():
            for name in study.files:
                os.replace(staging / name, target / name)
            staging.rmdir()
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise Conflict(
            f"{target} exists and is not a folder: choose a new folder for the study",
            field="directory",
            rule="target_folder",
        )
    if target.is_dir() and any(target.iterdir()):
        raise Conflict(
            f"{target} already exists and is not empty: choose a new or empty folder "
            "(nothing was written)",
            field="directory",
            rule="target_folder",
        )
    if not target.parent.is_dir():
        raise NotFound(
            f"the folder {target.parent} does not exist: create it first",
            field="directory",
        )


# -- the file formats ------------------------------------------------------------------------


def _meta(fields: dict[str, str]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


def _clinical_meta(study_id: str, datatype: str, level: str) -> str:
    return _meta(
        {
            "cancer_study_identifier": study_id,
            "genetic_alteration_type": "CLINICAL",
            "datatype": datatype,
            "data_filename": f"data_clinical_{level}.txt",
        }
    )


def _clinical_data(attributes: Sequence[Attribute], rows: Sequence[Row]) -> str:
    header = [
        "#" + "\t".join(_clean(a.display) for a in attributes),
        "#" + "\t".join(_clean(a.description) for a in attributes),
        "#" + "\t".join(a.datatype for a in attributes),
        "#" + "\t".join(str(a.priority) for a in attributes),
    ]
    table = _table([a.name for a in attributes], rows, missing=NA)
    return "\n".join(header) + "\n" + table


def _table(columns: Sequence[str], rows: Sequence[Row], *, missing: str) -> str:
    lines = ["\t".join(columns)]
    lines.extend("\t".join(_cell(row.get(c), missing) for c in columns) for row in rows)
    return "\n".join(lines) + "\n"


def _cell(value: Any, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return _number(value)
    text = _clean(str(value))
    return text if text else missing


def _number(value: float) -> str:
    rounded = round(value, 4)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def _clean(text: str) -> str:
    """One line of text without tabs: free text must not break the table."""
    return " ".join(text.split())


def _words(code: str) -> str:
    return code.replace("_", " ")


def _method(biopsy: ev.Biopsy) -> str:
    return f"{biopsy.method}, {biopsy.guidance}-guided" if biopsy.guidance else biopsy.method


__all__ = [
    "DEFAULT_CANCER_TYPE",
    "DEFAULT_STUDY_ID",
    "PATIENT_ATTRIBUTES",
    "SAMPLE_ATTRIBUTES",
    "TIMELINES",
    "ExportReport",
    "Study",
    "build_study",
    "check_study_id",
    "cohort_ids",
    "export_study",
    "write_study",
]
