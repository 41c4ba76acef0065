"""The tables of the stored views, their indexes, and the version of their layout.

What is stored is what reads need and nothing that grows with a patient's history per write:

- `ol_events`: one row per stored event with its clear envelope (who recorded which type of
  which patient when, from where; for corrections the event corrected and why): the change
  audit (`projections.audit`) and the cohort's `as_of` candidates query it. No body: a
  patient's events are read from the ledger's stream.
- `ol_patients`: the cohort index, one row per patient (SPEC §4 **patients**).
- `ol_survival`: what a cohort survival analysis groups on (`projections.survival_subjects`).
- `ol_tracking`: the position applied up to, the layout version, and a rebuild under way.

Per-patient documents (timeline, stage, ctc, response, survival) are not stored: each grows
with the history, and a read computes it from the patient's kept state
(`projections.current`). Views of another layout version are dropped and built again.
"""

from __future__ import annotations

from projections import survival_subjects

TRACKING_NAME = "views"
# The layout of the tables below; views of any other layout are dropped and rebuilt.
LAYOUT_NAME = "views-layout"
LAYOUT_VERSION = 2
# Present while a rebuild is under way: a rerun resumes it, and whoever reaches the head
# finishes it (indexes, statistics).
REBUILD_NAME = "views-rebuild"

TABLES = (
    "CREATE TABLE IF NOT EXISTS ol_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS ol_events (
        event_id TEXT NOT NULL,
        position BIGINT PRIMARY KEY,
        patient_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        type TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        source TEXT NOT NULL,
        target_event_id TEXT,
        reason TEXT)""",
    """CREATE TABLE IF NOT EXISTS ol_patients (
        patient_id TEXT PRIMARY KEY,
        sex TEXT, birth_year BIGINT, primary_site TEXT, histology TEXT,
        stage_group TEXT, ctc_latest_per_7_5_ml DOUBLE PRECISION, ctc_trend TEXT NOT NULL,
        concordance TEXT NOT NULL, survival_status TEXT, os_months DOUBLE PRECISION,
        events BIGINT NOT NULL, last_recorded_at TEXT)""",
    *survival_subjects.SCHEMA,
)
# Built after a rebuild's bulk load (cheaper than keeping them current row by row).
INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS ol_events_stream ON ol_events (patient_id, version)",
    "CREATE INDEX IF NOT EXISTS ol_events_actor ON ol_events (recorded_by, position)",
    "CREATE INDEX IF NOT EXISTS ol_events_type ON ol_events (type, position)",
    "CREATE INDEX IF NOT EXISTS ol_events_recorded ON ol_events (recorded_at)",
    *(
        f"CREATE INDEX IF NOT EXISTS ol_patients_{col} ON ol_patients ({col}, patient_id)"
        for col in (
            "sex",
            "birth_year",
            "histology",
            "stage_group",
            "ctc_latest_per_7_5_ml",
            "ctc_trend",
            "concordance",
            "survival_status",
            "os_months",
            "events",
            "last_recorded_at",
        )
    ),
)
DROP = ("ol_patients", "ol_events", "ol_tracking", survival_subjects.TABLE)
# Tables of earlier layouts, dropped with the rest (ol_docs held per-patient documents).
LEGACY = ("ol_docs",)
EVENT_COLUMNS = (
    "event_id",
    "position",
    "patient_id",
    "version",
    "type",
    "recorded_at",
    "recorded_by",
    "source",
    "target_event_id",
    "reason",
)
INSERT_EVENTS = (
    f"INSERT INTO ol_events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
