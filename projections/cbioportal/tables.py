"""What a cBioPortal study holds, as data: the attributes of the patient and sample files,
the timelines with their columns, the OncoTree and vocabulary mappings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_STUDY_ID = "oncoledger"
DEFAULT_CANCER_TYPE = "esca"
# cBioPortal's importer: study ids of lower-case letters, digits and underscores, at most 255;
# sample ids of at most 63 characters.
STUDY_ID_PATTERN = r"^[a-z0-9_]{1,255}$"
MAX_SAMPLE_ID_LENGTH = 63
NA = "NA"
STUDY_ID_RE = re.compile(STUDY_ID_PATTERN)
CANCER_TYPE_RE = re.compile(r"^[a-z0-9_]{1,63}$")
COHORT_PAGE = 1000

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
