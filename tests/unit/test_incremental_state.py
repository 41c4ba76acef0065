"""Kept per-patient state (`PatientState`, `domain.in_force`) equals the full computation.

Random streams with late entries, partial dates, amendments (which may move an event's date or
change its values) and retractions are recorded on the real aggregate; after every event the
state folded one event at a time must give exactly what the reference computations give over
the whole history: the cohort row, the survival row, every read model, the items in order.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal
from uuid import UUID

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import DomainError
from domain.in_force import Correction, Item, build
from domain.patient import Patient
from projections import readmodels, survival_subjects
from projections.current import view_of
from projections.patient_state import PatientState, Summary

Body = dict[str, Any]


@st.composite
def dates(draw: st.DrawFn) -> str:
    year = draw(st.integers(2015, 2018))
    month = draw(st.none() | st.integers(1, 12))
    if month is None:
        return f"{year}"
    day = draw(st.none() | st.integers(1, 28))
    return f"{year}-{month:02d}" if day is None else f"{year}-{month:02d}-{day:02d}"


def reference_items(history: list[ev.AnyEvent]) -> list[Item]:
    """An independent reference: the whole history at once, sorted at the end (the product
    keeps the items incrementally in `domain.in_force`; this holds the two equal)."""
    items: dict[UUID, Item] = {}
    for entry in history:
        assert entry.event_id is not None and entry.version is not None
        if isinstance(entry, ev.EventAmended | ev.EventRetracted):
            item = items.get(entry.target_event_id)
            if item is None:
                continue
            kind: Literal["amended", "retracted"]
            if isinstance(entry, ev.EventAmended):
                kind = "amended"
                item.body = entry.replacement
            else:
                kind = "retracted"
            item.status = kind
            item.corrections.append(
                Correction(
                    event_id=entry.event_id,
                    kind=kind,
                    version=entry.version,
                    recorded_at=entry.recorded_at,
                    recorded_by=entry.recorded_by,
                    reason=entry.reason,
                )
            )
        else:
            items[entry.event_id] = Item(entry.event_id, entry.version, entry, entry)
    return sorted(items.values(), key=lambda item: item.sort_key)


def _clinical(draw: st.DrawFn) -> Body:
    on = draw(dates())
    kind = draw(
        st.sampled_from(
            ["ctc", "ctc", "ctc", "staging", "staging", "diagnosis", "biopsy", "death", "imaging"]
        )
    )
    estimated = draw(st.booleans())
    body: Body
    if kind == "ctc":
        body = {
            "type": "ctc_count",
            "count": draw(st.integers(0, 12)),
            "blood_volume_ml": draw(st.sampled_from([7.5, 7.4, 10.0, 5.0, 3.75])),
        }
    elif kind == "staging":
        body = {
            "type": "staging",
            "context": draw(st.sampled_from(["c", "p", "yp"])),
            "t": draw(st.sampled_from(["T1", "T2", "T3", "T4a", "TX"])),
            "n": draw(st.sampled_from(["N0", "N1", "N2", "NX"])),
            "m": draw(st.sampled_from(["M0", "M1"])),
        }
    elif kind == "diagnosis":
        body = {
            "type": "diagnosis_confirmed",
            "histology": draw(st.sampled_from(["squamous_cell_carcinoma", "adenocarcinoma"])),
            "grade": draw(st.sampled_from(["G1", "G3", "GX"])),
            "tumor_location": draw(st.sampled_from(["upper", "lower", "unknown"])),
        }
    elif kind == "biopsy":
        body = {
            "type": "biopsy",
            "site": "esophagus",
            "histology": draw(st.sampled_from([None, "no_malignancy", "adenocarcinoma"])),
        }
    elif kind == "imaging":
        body = {
            "type": "imaging",
            "modality": "ct",
            "region": "chest",
            "lesions": [
                {"lesion_id": lid, "site": "liver", "dimensions_mm": [draw(st.integers(0, 40))]}
                for lid in draw(st.lists(st.sampled_from(["L1", "L2"]), max_size=2, unique=True))
            ],
        }
    else:
        body = {"type": "death", "cause": "cancer"}
    return {**body, "occurred": on, "date_estimated": estimated}


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, int, Body]]:
    ops = []
    for _ in range(draw(st.integers(1, 30))):
        op = draw(st.sampled_from(["add", "add", "add", "add", "amend", "retract"]))
        ops.append((op, draw(st.integers(0, 1000)), _clinical(draw)))
    return ops


def _correction(patient: Patient, op: str, pick: int, body: Body) -> Body | None:
    targets = [e for e in patient.entries if not isinstance(e, ev.EventAmended | ev.EventRetracted)]
    target = targets[pick % len(targets)]
    correction: Body = {
        "occurred": "2019-01-01",
        "target_event_id": str(target.event_id),
        "reason": "test",
    }
    if op == "retract":
        return {**correction, "type": "event_retracted"}
    replacement = msgspec.to_builtins(target)
    for name in ev.SERVER_FIELDS:
        replacement.pop(name, None)
    replacement.pop("event_id", None)
    replacement["occurred"] = body["occurred"]
    if body["type"] == replacement["type"]:  # new values of the same kind, too
        replacement.update({k: v for k, v in body.items() if k != "date_estimated"})
    return {**correction, "type": "event_amended", "replacement": replacement}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations())
def test_kept_state_equals_the_full_computation_after_every_event(
    ops: list[tuple[str, int, Body]],
) -> None:
    patient = Patient("P1")
    state = PatientState("P1")
    registration = {"type": "patient_registered", "occurred": "2015-01-01", "sex": "male"}
    bodies: list[Body | None] = [registration]
    for op, pick, body in ops:
        bodies.append(body if op == "add" else None)
        if op != "add":
            bodies[-1] = {"op": op, "pick": pick, "body": body}
    for item in bodies:
        assert item is not None
        if "op" in item:
            item = _correction(patient, item["op"], item["pick"], item["body"])
            assert item is not None
        try:
            patient.record(decode_entry(item), actor="t", source="cli")
        except DomainError:
            continue  # refused by the stream's rules: not stored
        state.apply(patient.entries[-1])
        history = list(patient.entries)
        views, row = readmodels.project("P1", history)
        got_row, got_survival = state.rows()
        assert got_row == row
        assert got_survival == survival_subjects.row("P1", views)
        reference = [
            (i.event_id, i.status, i.body, i.corrections) for i in reference_items(history)
        ]
        kept = [(i.event_id, i.status, i.body, i.corrections) for i in state.items.items]
        assert kept == reference
        rebuilt = [(i.event_id, i.status, i.body) for i in build(history).items]
        assert rebuilt == [r[:3] for r in reference]
        for name in readmodels.PATIENT_VIEWS:
            computed = view_of(state, name, readmodels.STORED_CTC_RULE)
            assert msgspec.to_builtins(computed) == msgspec.to_builtins(views[name]), name


def test_kept_state_folded_again_from_checkpoints_equals_the_full_computation(
    monkeypatch: Any,
) -> None:
    """The same property with a checkpoint every two items: a late entry or a correction is
    folded again from the latest checkpoint before it, never from a stale one."""
    monkeypatch.setattr(PatientState, "CHECKPOINT_EVERY", 2)
    test_kept_state_equals_the_full_computation_after_every_event()


def test_a_late_entry_refolds_only_from_the_checkpoint_before_it(monkeypatch: Any) -> None:
    """A 300-event stream, then entries dated a few items before the last: a late biopsy is
    folded again over the items after the checkpoint before it, a late draw is placed between
    its neighbours, a late follow-up changes nothing; never a fold over the whole stream."""
    patient = Patient("P1")
    registration = {"type": "patient_registered", "occurred": "2015-01-01", "sex": "male"}
    patient.record(decode_entry(registration), actor="t", source="cli")
    for i in range(300):
        day = (date(2016, 1, 1) + timedelta(days=i)).isoformat()
        body = {"type": "ctc_count", "occurred": day, "count": i % 7}
        patient.record(decode_entry(body), actor="t", source="cli")
    state = PatientState("P1", patient.entries)
    state.rows()
    folds: list[Item] = []
    real_fold = Summary.fold

    def counting(self: Summary, item: Item) -> None:
        folds.append(item)
        real_fold(self, item)

    monkeypatch.setattr(Summary, "fold", counting)
    late = state.items.items[-5].body.occurred
    for body, most in (
        ({"type": "biopsy", "site": "esophagus", "histology": "adenocarcinoma"}, 5 + 16),
        ({"type": "ctc_count", "count": 9}, 1),
        ({"type": "follow_up", "status": "alive"}, 1),
    ):
        folds.clear()
        patient.record(decode_entry({**body, "occurred": late}), actor="t", source="cli")
        state.apply(patient.entries[-1])
        got_row, got_survival = state.rows()
        views, row = readmodels.project("P1", list(patient.entries))
        assert got_row == row
        assert got_survival == survival_subjects.row("P1", views)
        assert len(folds) <= most, body["type"]
    assert PatientState.CHECKPOINT_EVERY == 16


def test_a_late_entry_before_retracted_items_moves_no_checkpoint_past_them(
    monkeypatch: Any,
) -> None:
    """A late follow-up placed just before a retracted draw: a checkpoint that would now end
    on the follow-up (its last item in force) is not kept as if it ended before it."""
    monkeypatch.setattr(PatientState, "CHECKPOINT_EVERY", 2)
    patient = Patient("P1")
    registration = {"type": "patient_registered", "occurred": "2015-01-01", "sex": "male"}
    diagnosis = {"type": "diagnosis_confirmed", "occurred": "2015-06-01", "histology": "other"}
    bodies: list[Body] = [registration, diagnosis]
    bodies += [
        {"type": "ctc_count", "occurred": f"2016-01-0{d}", "count": d} for d in (1, 3, 5, 7, 9)
    ]
    for body in bodies:
        patient.record(decode_entry(body), actor="t", source="cli")
    state = PatientState("P1", patient.entries)

    def record(body: Body) -> None:
        patient.record(decode_entry(body), actor="t", source="cli")
        state.apply(patient.entries[-1])
        views, row = readmodels.project("P1", list(patient.entries))
        assert state.rows() == (row, survival_subjects.row("P1", views))

    def retract(version: int) -> Body:
        target = str(patient.entries[version - 1].event_id)
        return {
            "type": "event_retracted",
            "occurred": "2019-01-01",
            "target_event_id": target,
            "reason": "test",
        }

    record(retract(6))  # the draw of 2016-01-07
    record({"type": "follow_up", "occurred": "2016-01-06", "status": "alive"})
    record(retract(7))  # the draw of 2016-01-09: the follow-up is now the last item in force
