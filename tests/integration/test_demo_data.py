"""The packaged demo patients record cleanly, idempotently, and say what the case report says."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain import events as ev
from domain.demo import CASE_REPORT_PATIENT, DEMO_FILES, demo_patients, record_demo
from domain.ledger.application import Ledger, StoreConfig


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(StoreConfig(sqlite_path=str(tmp_path / "x.db")))


def _case_history(ledger: Ledger) -> list[ev.AnyEvent]:
    return ledger.history(CASE_REPORT_PATIENT)


def test_demo_files_and_patients() -> None:
    assert DEMO_FILES[0] == "case_report.jsonl"
    patients = demo_patients()
    assert [pid for pid, _ in patients] == [CASE_REPORT_PATIENT, "DEMO-EAC-002", "DEMO-ESCC-003"]
    all_ids = [event["event_id"] for _, events in patients for event in events]
    assert len(all_ids) == len(set(all_ids)), "event_ids must be unique across the demo"
    for _, events in patients:
        assert events[0]["type"] == "patient_registered"


def test_every_line_is_stored(ledger: Ledger) -> None:
    result = record_demo(ledger, actor="demo-test")
    patients = demo_patients()
    assert result == [(pid, len(events)) for pid, events in patients]
    for pid, events in patients:
        history = ledger.history(pid)
        assert [str(e.event_id) for e in history] == [event["event_id"] for event in events]
        assert [e.version for e in history] == list(range(1, len(events) + 1))
        assert all(e.recorded_by == "demo-test" and e.source == "cli" for e in history)


def test_recording_twice_stores_nothing_new(ledger: Ledger) -> None:
    record_demo(ledger, actor="demo-test")
    before = {pid: ledger.history(pid) for pid, _ in demo_patients()}
    again = record_demo(ledger, actor="someone-else", source="api")
    assert again == [(pid, 0) for pid, _ in demo_patients()]
    for pid, history in before.items():
        assert ledger.history(pid) == history


def test_case_report_ctc_counts(ledger: Ledger) -> None:
    record_demo(ledger, actor="demo-test")
    draws = [e for e in _case_history(ledger) if isinstance(e, ev.CtcCount)]
    assert [(d.occurred, d.count) for d in draws] == [
        ("2016-08-30", 4),
        ("2016-12-30", 2),
        ("2017-10-10", 0),
    ]
    assert all(d.blood_volume_ml == 7.5 and not d.date_estimated for d in draws)


def test_case_report_four_stagings_all_ivb(ledger: Ledger) -> None:
    record_demo(ledger, actor="demo-test")
    stagings = [e for e in _case_history(ledger) if isinstance(e, ev.Staging)]
    assert len(stagings) == 4
    assert all(
        (s.context, s.t, s.n, s.m, s.stage_group) == ("c", "T4", "N2", "M1", "IVB")
        for s in stagings
    )
    assert stagings[0].occurred == "2016-05-31"
    assert [s.occurred for s in stagings[1:]] == ["2016-08-30", "2016-12-30", "2017-10-10"]
    assert all(s.date_estimated for s in stagings)


def test_case_report_survival_dates(ledger: Ledger) -> None:
    record_demo(ledger, actor="demo-test")
    history = _case_history(ledger)
    assert isinstance(history[0], ev.PatientRegistered)
    assert history[0].occurred == "2016-04-26"
    assert history[0].sex == "male" and history[0].birth_year is None
    diagnoses = [e for e in history if isinstance(e, ev.DiagnosisConfirmed)]
    assert [(d.occurred, d.histology, d.grade, d.basis) for d in diagnoses] == [
        ("2016-05-09", "squamous_cell_carcinoma", "G3", "histology")
    ]
    deaths = [e for e in history if isinstance(e, ev.Death)]
    assert len(deaths) == 1
    death = deaths[0]
    assert death.occurred == "2018-08" and death.date_estimated and death.cause == "unknown"
    assert history[-1] == death


def test_case_report_ablation_targets_the_liver_lesion(ledger: Ledger) -> None:
    record_demo(ledger, actor="demo-test")
    history = _case_history(ledger)
    ablations = [e for e in history if isinstance(e, ev.Ablation)]
    assert len(ablations) == 1
    assert ablations[0].target_lesion_id == "liver-1" and ablations[0].date_estimated
    sizes = [
        lesion.dimensions_mm
        for e in history
        if isinstance(e, ev.Imaging)
        for lesion in e.lesions
        if lesion.lesion_id == "liver-1"
    ]
    assert sizes == [[38, 35, 26], [38, 35, 26], [36, 31, 20], [32, 27, 19]]


def test_adenocarcinoma_corrections_point_at_earlier_events(ledger: Ledger) -> None:
    record_demo(ledger, actor="demo-test")
    history = ledger.history("DEMO-EAC-002")
    by_id = {e.event_id: e for e in history}
    amended = [e for e in history if isinstance(e, ev.EventAmended)]
    retracted = [e for e in history if isinstance(e, ev.EventRetracted)]
    assert len(amended) == 1 and len(retracted) == 1
    target = by_id[amended[0].target_event_id]
    assert isinstance(target, ev.CtcCount) and target.version < amended[0].version
    assert isinstance(amended[0].replacement, ev.CtcCount) and amended[0].replacement.count == 4
    assert isinstance(by_id[retracted[0].target_event_id], ev.Imaging)
    assert all(d.blood_volume_ml == 10.0 for d in history if isinstance(d, ev.CtcCount))
