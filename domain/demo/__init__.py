"""Demo patients that ship with the package, one JSON event per line (SPEC §3, flat form).

`case_report.jsonl` is the patient of the seed case report (`CR-ESCC-001`); the other two are
synthetic patients exercising what the case report does not (rising CTC counts, corrections,
response, a censored survivor). Every event carries a fixed `event_id`, so recording the demo
again is a no-op.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from domain.codec import decode_entry
from domain.ledger.application import Ledger

DEMO_FILES: tuple[str, ...] = (
    "case_report.jsonl",
    "adenocarcinoma_progression.jsonl",
    "censored_survivor.jsonl",
)
CASE_REPORT_PATIENT = "CR-ESCC-001"


def _read_events(name: str) -> list[dict[str, Any]]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    events: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        event = json.loads(line)
        if not isinstance(event, dict):
            raise ValueError(f"{name}:{number}: expected a JSON object")
        events.append(event)
    return events


def demo_patients() -> list[tuple[str, list[dict[str, Any]]]]:
    """Each demo file as `(patient_id, events in stream order)`, case report first."""
    patients: list[tuple[str, list[dict[str, Any]]]] = []
    for name in DEMO_FILES:
        events = _read_events(name)
        ids = {event.get("patient_id") for event in events}
        if len(ids) != 1 or not isinstance(next(iter(ids)), str):
            raise ValueError(f"{name}: every line must name the same patient_id, found {ids}")
        patients.append((str(next(iter(ids))), events))
    return patients


def record_demo(ledger: Ledger, *, actor: str, source: str = "cli") -> list[tuple[str, int]]:
    """Append every demo patient's events in order; return `(patient_id, newly recorded)`.

    Events go in one at a time, as a clinician would enter them. Already recorded events (same
    `event_id`, same body) are skipped by the ledger, so running this twice records nothing new.
    """
    result: list[tuple[str, int]] = []
    for patient_id, events in demo_patients():
        created = 0
        for event in events:
            entry = decode_entry(event)
            receipts = ledger.append(patient_id, [entry], actor=actor, source=source)
            created += sum(1 for receipt in receipts if receipt.created)
        result.append((patient_id, created))
    return result


__all__ = ["CASE_REPORT_PATIENT", "DEMO_FILES", "demo_patients", "record_demo"]
