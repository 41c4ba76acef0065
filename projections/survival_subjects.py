"""`ol_survival`: one stored row per patient with what a cohort survival analysis groups on.

Kept beside the cohort index (`ol_patients`) by the same catch-up, in the same transaction, from
the same computed read models, so the current-data Kaplan-Meier reads two indexed tables and
never the events. It holds exact survival days (never the rounded `os_months`), the stage group
at diagnosis, the stage trend and CTC clearance under the stored rule; the CTC trend, the
concordance and the histology stay in `ol_patients`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.ledger.db import Cursor
from projections.ctc import CtcView
from projections.stage import StageView
from projections.survival import SurvivalView

TABLE = "ol_survival"
SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        patient_id TEXT PRIMARY KEY,
        diagnosis_date TEXT,
        os_days BIGINT,
        dead BIGINT NOT NULL,
        approximate BIGINT NOT NULL,
        stage_at_diagnosis TEXT,
        stage_trend TEXT NOT NULL,
        ctc_cleared BIGINT NOT NULL,
        ctc_draws BIGINT NOT NULL)""",
)
COLUMNS = (
    "patient_id",
    "diagnosis_date",
    "os_days",
    "dead",
    "approximate",
    "stage_at_diagnosis",
    "stage_trend",
    "ctc_cleared",
    "ctc_draws",
)


def row(patient_id: str, views: dict[str, msgspec.Struct]) -> tuple[Any, ...]:
    stage, ctc, survival = views["stage"], views["ctc"], views["survival"]
    assert isinstance(stage, StageView) and isinstance(ctc, CtcView)
    assert isinstance(survival, SurvivalView)
    return (
        patient_id,
        survival.diagnosis_date,
        survival.os_days,
        int(survival.status == "dead"),
        int(survival.approximate),
        stage.at_diagnosis.stage_group if stage.at_diagnosis else None,
        stage.trend,
        int(ctc.cleared),
        len(ctc.draws),
    )


def write(cur: Cursor, patient_id: str, views: dict[str, msgspec.Struct]) -> None:
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
    cur.execute(
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
        f"ON CONFLICT (patient_id) DO UPDATE SET {updates}",
        row(patient_id, views),
    )


def missing_rows(cur: Cursor) -> bool:
    """Patients indexed but none here: views built before this table existed."""
    cur.execute("SELECT 1 FROM ol_patients LIMIT 1")
    if cur.fetchone() is None:
        return False
    cur.execute(f"SELECT 1 FROM {TABLE} LIMIT 1")
    return cur.fetchone() is None
