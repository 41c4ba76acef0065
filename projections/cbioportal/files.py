"""The study folder on disk: the cohort selected, the study built and written in one go."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.errors import Conflict, NotFound
from projections.cbioportal.study import ExportReport, Study, build_study, check_study_id
from projections.cbioportal.tables import (
    COHORT_PAGE,
    DEFAULT_CANCER_TYPE,
    DEFAULT_STUDY_ID,
)

if TYPE_CHECKING:
    from projections.root import OncoLedger

# -- writing ---------------------------------------------------------------------------------


def cohort_ids(app: OncoLedger, filters: dict[str, Any] | None = None) -> list[str]:
    """The patients the cohort filters (those of `patient list`) select, in id order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = app.patients(filters=filters or {}, limit=COHORT_PAGE, cursor=cursor)
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
