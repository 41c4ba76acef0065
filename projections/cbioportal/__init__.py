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

- `tables.py`: the attributes, timelines and vocabulary mappings, as data.
- `record.py`: one patient's rows. `study.py`: the study in memory. `formats.py`: the file
  formats. `files.py`: the folder on disk and `export_study`, the service call.
"""

from projections.cbioportal.files import cohort_ids, export_study, write_study
from projections.cbioportal.study import ExportReport, Study, build_study, check_study_id
from projections.cbioportal.tables import (
    DEFAULT_CANCER_TYPE,
    DEFAULT_STUDY_ID,
    PATIENT_ATTRIBUTES,
    SAMPLE_ATTRIBUTES,
    TIMELINES,
)

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
