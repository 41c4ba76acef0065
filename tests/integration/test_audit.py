"""Change audit (SPEC §4 audit), the correction workflow and the digest (SPEC §6), end to end.

The scenario: clinician dr_a records two patients (registration, diagnosis, stagings, CTC
draws); nurse_b amends a CTC count with a reason; dm_c retracts a staging entered in error.
Every test runs on SQLite and, when a server is configured, on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest
from tamper import raw

from domain.errors import NotFound, RuleViolation, ValidationFailed
from domain.integrity import event_hash
from domain.ledger.application import StoreConfig
from projections.audit import AuditEntry
from projections.root import OncoLedger

DX = UUID("d0000000-0000-4000-8000-000000000001")
S1 = UUID("50000000-0000-4000-8000-000000000001")
S2 = UUID("50000000-0000-4000-8000-000000000002")
C1 = UUID("c0000000-0000-4000-8000-000000000001")
C2 = UUID("c0000000-0000-4000-8000-000000000002")
C3 = UUID("c0000000-0000-4000-8000-000000000003")
CTC_REASON = "count transcribed from the wrong sample sheet; lab report says 2"
STAGING_REASON = "staging entered for the wrong patient"


def events_table(store: StoreConfig) -> str:
    return "oncoledger_events" if store.is_postgres else "stored_events"


def stored_state(store: StoreConfig, patient_id: str, version: int) -> bytes:
    ((state,),) = raw(
        store,
        f"SELECT state FROM {events_table(store)} "
        "WHERE originator_id = ? AND originator_version = ?",
        (patient_id, version),
    )
    return bytes(state)


def set_state(store: StoreConfig, patient_id: str, version: int, state: bytes) -> None:
    raw(
        store,
        f"UPDATE {events_table(store)} SET state = ? "
        "WHERE originator_id = ? AND originator_version = ?",
        (state, patient_id, version),
    )


def delete_event(store: StoreConfig, patient_id: str, version: int) -> None:
    raw(
        store,
        f"DELETE FROM {events_table(store)} WHERE originator_id = ? AND originator_version = ?",
        (patient_id, version),
    )


def pause() -> datetime:
    """An instant strictly between what was recorded before and what is recorded after."""
    time.sleep(0.005)
    mark = datetime.now(UTC)
    time.sleep(0.005)
    return mark


@dataclass
class Scenario:
    system: OncoLedger
    store: StoreConfig
    records_done: datetime  # after dr_a's records, before any correction
    amended: datetime  # after nurse_b's amendment, before dm_c's retraction
    amendment_id: UUID
    retraction_id: UUID


def staging(event_id: UUID, on: str, t: str, n: str, m: str) -> dict[str, Any]:
    return {"type": "staging", "event_id": str(event_id), "occurred": on, "t": t, "n": n, "m": m}


def record_scenario(system: OncoLedger) -> tuple[UUID, UUID, datetime, datetime]:
    system.register(
        "P1",
        {"occurred": "2016-04-26", "sex": "male", "birth_year": 1940},
        actor="dr_a",
        source="cli",
    )
    system.append(
        "P1",
        [
            {
                "type": "diagnosis_confirmed",
                "event_id": str(DX),
                "occurred": "2016-05-09",
                "histology": "squamous_cell_carcinoma",
                "grade": "G3",
            },
            staging(S1, "2016-05-31", "T4", "N2", "M1"),
            {"type": "ctc_count", "event_id": str(C1), "occurred": "2016-05-31", "count": 4},
            staging(S2, "2016-08-30", "T3", "N0", "M0"),
            {"type": "ctc_count", "event_id": str(C2), "occurred": "2016-08-30", "count": 3},
            {"type": "ctc_count", "event_id": str(C3), "occurred": "2017-07-10", "count": 0},
        ],
        actor="dr_a",
        source="api",
    )
    system.register("P2", {"occurred": "2018-02-01", "sex": "female"}, actor="dr_a", source="api")
    system.append(
        "P2",
        [{"type": "diagnosis_confirmed", "occurred": "2018-02-03", "histology": "adenocarcinoma"}],
        actor="dr_a",
        source="api",
    )
    records_done = pause()
    amendment = system.amend(
        "P1",
        C2,
        {"type": "ctc_count", "occurred": "2016-08-30", "count": 2},
        reason=CTC_REASON,
        actor="nurse_b",
        source="api",
    )
    amended = pause()
    retraction = system.retract("P1", S2, reason=STAGING_REASON, actor="dm_c", source="cli")
    return amendment.event_id, retraction.event_id, records_done, amended


@pytest.fixture
def scenario(store: StoreConfig) -> Iterator[Scenario]:
    with OncoLedger(store) as system:
        amendment_id, retraction_id, records_done, amended = record_scenario(system)
        yield Scenario(system, store, records_done, amended, amendment_id, retraction_id)


def rows(entries: list[AuditEntry]) -> list[tuple[Any, ...]]:
    return [(e.patient_id, e.version, e.type, e.recorded_by) for e in entries]


DR_A_ROWS = [
    ("P1", 1, "patient_registered", "dr_a"),
    ("P1", 2, "diagnosis_confirmed", "dr_a"),
    ("P1", 3, "staging", "dr_a"),
    ("P1", 4, "ctc_count", "dr_a"),
    ("P1", 5, "staging", "dr_a"),
    ("P1", 6, "ctc_count", "dr_a"),
    ("P1", 7, "ctc_count", "dr_a"),
    ("P2", 1, "patient_registered", "dr_a"),
    ("P2", 2, "diagnosis_confirmed", "dr_a"),
]
CORRECTION_ROWS = [
    ("P1", 8, "event_amended", "nurse_b"),
    ("P1", 9, "event_retracted", "dm_c"),
]


# -- the audit ------------------------------------------------------------------------------


def test_audit_lists_every_stored_event_in_recording_order(scenario: Scenario) -> None:
    # Given the scenario recorded
    # When the auditor lists everything
    page = scenario.system.audit()
    # Then every stored event is there, in recording order, with its envelope
    assert rows(page.entries) == DR_A_ROWS + CORRECTION_ROWS
    assert page.next_cursor is None
    positions = [e.position for e in page.entries]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    first = page.entries[0]
    assert (first.source, first.target_event_id, first.reason) == ("cli", None, None)
    assert first.recorded_at.tzinfo is not None
    assert [e.source for e in page.entries[1:7]] == ["api"] * 6


def test_corrections_only_shows_who_changed_what_and_why(scenario: Scenario) -> None:
    # When the auditor asks for corrections only
    page = scenario.system.audit(corrections=True)
    # Then exactly the amendment and the retraction, with their actors, targets and reasons
    assert rows(page.entries) == CORRECTION_ROWS
    amendment, retraction = page.entries
    assert amendment.event_id == scenario.amendment_id
    assert (amendment.target_event_id, amendment.reason) == (C2, CTC_REASON)
    assert retraction.event_id == scenario.retraction_id
    assert (retraction.target_event_id, retraction.reason) == (S2, STAGING_REASON)
    assert (amendment.source, retraction.source) == ("api", "cli")


def test_audit_by_patient(scenario: Scenario) -> None:
    assert rows(scenario.system.audit("P2").entries) == DR_A_ROWS[7:]
    assert rows(scenario.system.audit("P1").entries) == DR_A_ROWS[:7] + CORRECTION_ROWS
    assert rows(scenario.system.audit("P1", corrections=True).entries) == CORRECTION_ROWS
    assert scenario.system.audit("P2", corrections=True).entries == []


def test_audit_by_actor(scenario: Scenario) -> None:
    assert rows(scenario.system.audit(actor="nurse_b").entries) == CORRECTION_ROWS[:1]
    assert rows(scenario.system.audit(actor="dm_c").entries) == CORRECTION_ROWS[1:]
    assert rows(scenario.system.audit(actor="dr_a").entries) == DR_A_ROWS
    assert rows(scenario.system.audit("P2", actor="nurse_b").entries) == []
    assert scenario.system.audit(actor="nobody").entries == []


def test_audit_by_event_type(scenario: Scenario) -> None:
    stagings = scenario.system.audit(type="staging").entries
    assert [(e.event_id, e.recorded_by) for e in stagings] == [(S1, "dr_a"), (S2, "dr_a")]
    both = scenario.system.audit(type=["event_retracted", "staging"]).entries
    assert [e.type for e in both] == ["staging", "staging", "event_retracted"]
    assert scenario.system.audit(type="staging", corrections=True).entries == []
    assert rows(scenario.system.audit(type="event_amended", corrections=True).entries) == [
        CORRECTION_ROWS[0]
    ]


def test_audit_by_time_range(scenario: Scenario) -> None:
    system = scenario.system
    # Since the records were done: only the corrections
    assert rows(system.audit(since=scenario.records_done).entries) == CORRECTION_ROWS
    # Until then: only dr_a's records
    assert rows(system.audit(until=scenario.records_done).entries) == DR_A_ROWS
    # Between the two corrections' instants: the amendment alone
    window = system.audit(since=scenario.records_done, until=scenario.amended)
    assert rows(window.entries) == CORRECTION_ROWS[:1]
    # ISO text works as well as datetimes, a bare date covers its whole day
    iso = scenario.amended.isoformat().replace("+00:00", "Z")
    assert rows(system.audit(since=iso).entries) == CORRECTION_ROWS[1:]
    today = datetime.now(UTC).date().isoformat()
    assert len(system.audit(since=today, until=today).entries) == 11
    assert system.audit(until="2000-01-01").entries == []


def test_audit_time_bounds_are_inclusive_to_the_microsecond(scenario: Scenario) -> None:
    amendment = scenario.system.audit(actor="nurse_b").entries[0]
    at = amendment.recorded_at
    assert rows(scenario.system.audit(since=at, until=at).entries) == CORRECTION_ROWS[:1]


def test_audit_pages_by_position(scenario: Scenario) -> None:
    # When the auditor pages 4 at a time
    seen: list[AuditEntry] = []
    after = None
    pages = 0
    while True:
        page = scenario.system.audit(after=after, limit=4)
        seen += page.entries
        pages += 1
        if page.next_cursor is None:
            break
        after = page.next_cursor
        assert after == page.entries[-1].position
    # Then the pages concatenate to the whole audit, with no repeats
    assert pages == 3
    assert rows(seen) == DR_A_ROWS + CORRECTION_ROWS
    # And a cursor combines with the filters
    first = scenario.system.audit("P1", limit=1)
    rest = scenario.system.audit("P1", after=first.next_cursor)
    assert rows(first.entries + rest.entries) == DR_A_ROWS[:7] + CORRECTION_ROWS


def test_audit_sees_events_recorded_by_another_process(scenario: Scenario) -> None:
    # Given another OncoLedger (another process) records an event
    with OncoLedger(scenario.store) as other:
        other.append(
            "P2",
            [{"type": "ctc_count", "occurred": "2018-03-01", "count": 1}],
            actor="dr_z",
            source="api",
        )
    # Then the audit catches up first and shows it
    assert rows(scenario.system.audit(actor="dr_z").entries) == [("P2", 3, "ctc_count", "dr_z")]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "ctc"}, "type"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": -1}, "after"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2024-13-01"}, "until"),
    ],
)
def test_bad_audit_queries_are_validation_errors(
    store: StoreConfig, query: dict[str, Any], field: str
) -> None:
    with OncoLedger(store) as system, pytest.raises(ValidationFailed) as raised:
        system.audit(**query)
    assert raised.value.field == field


def test_audit_of_an_unknown_patient_is_not_found(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        system.register("P1", {"occurred": "2016-04-26", "sex": "male"}, actor="a", source="cli")
        with pytest.raises(NotFound):
            system.audit("P404")
        assert system.audit("P1").entries


# -- the corrections in the projections ------------------------------------------------------


def test_projections_reflect_the_corrected_data(scenario: Scenario) -> None:
    system = scenario.system
    # The amended draw counts with its replacement, under its own identity
    ctc = system.read("P1", "ctc")
    assert [(d.event_id, d.count) for d in ctc.draws] == [(C1, 4), (C2, 2), (C3, 0)]
    assert ctc.trend == "decreasing"
    # The retracted staging no longer counts
    stage = system.read("P1", "stage")
    assert [a.event_id for a in stage.history] == [S1]
    assert stage.current.event_id == S1
    # And before the corrections, the views said otherwise (time travel)
    before = system.read("P1", "ctc", as_of=scenario.records_done)
    assert [d.count for d in before.draws] == [4, 3, 0]
    assert [a.event_id for a in system.read("P1", "stage", upto=7).history] == [S1, S2]


def test_timeline_shows_who_corrected_what_when_and_why_next_to_the_original(
    scenario: Scenario,
) -> None:
    timeline = scenario.system.read("P1", "timeline")
    by_id = {row.event_id: row for row in timeline.events}
    draw = by_id[C2]
    assert draw.status == "amended"
    assert (draw.event["count"], draw.original and draw.original["count"]) == (2, 3)
    assert draw.recorded_by == "dr_a"
    (fix,) = draw.corrections
    assert (fix.kind, fix.recorded_by, fix.reason, fix.event_id) == (
        "amended",
        "nurse_b",
        CTC_REASON,
        scenario.amendment_id,
    )
    assert fix.recorded_at is not None and fix.recorded_at > scenario.records_done
    staging = by_id[S2]
    assert staging.status == "retracted"
    (withdrawal,) = staging.corrections
    assert (withdrawal.kind, withdrawal.recorded_by, withdrawal.reason) == (
        "retracted",
        "dm_c",
        STAGING_REASON,
    )
    # Corrections are not rows of their own on the timeline
    assert scenario.amendment_id not in by_id and scenario.retraction_id not in by_id


def test_history_keeps_the_original_and_the_attributed_corrections(scenario: Scenario) -> None:
    history = scenario.system.history("P1")
    assert [e.type for e in history][-2:] == ["event_amended", "event_retracted"]
    original = next(e for e in history if e.event_id == C2)
    assert getattr(original, "count", None) == 3  # never overwritten
    amendment, retraction = history[-2:]
    assert (amendment.recorded_by, getattr(amendment, "target_event_id", None)) == ("nurse_b", C2)
    assert getattr(amendment, "reason", None) == CTC_REASON
    assert (retraction.recorded_by, getattr(retraction, "target_event_id", None)) == ("dm_c", S2)


def test_a_correction_of_a_correction_is_refused_and_stores_nothing(scenario: Scenario) -> None:
    system = scenario.system
    before = len(system.history("P1"))
    with pytest.raises(RuleViolation) as amended:
        system.amend(
            "P1",
            scenario.amendment_id,
            {"type": "ctc_count", "occurred": "2016-08-30", "count": 1},
            reason="second thoughts",
            actor="nurse_b",
            source="api",
        )
    assert amended.value.rule == "no_correction_of_correction"
    with pytest.raises(RuleViolation) as retracted:
        system.retract("P1", scenario.retraction_id, reason="undo", actor="dm_c", source="cli")
    assert retracted.value.rule == "no_correction_of_correction"
    # A retracted event cannot be corrected again either
    with pytest.raises(RuleViolation) as again:
        system.retract("P1", S2, reason="twice", actor="dm_c", source="cli")
    assert again.value.rule == "target_not_retracted"
    assert len(system.history("P1")) == before
    assert len(system.audit("P1", corrections=True).entries) == 2


def test_the_original_can_be_amended_again(scenario: Scenario) -> None:
    # Correcting the original (not the correction) is the way to change it once more
    scenario.system.amend(
        "P1",
        C2,
        {"type": "ctc_count", "occurred": "2016-08-30", "count": 1, "blood_volume_ml": 5},
        reason="recount on the retained sample",
        actor="dm_c",
        source="cli",
    )
    draws = scenario.system.read("P1", "ctc").draws
    assert [(d.count, d.per_7_5_ml) for d in draws] == [(4, 4.0), (1, 1.5), (0, 0.0)]
    row = next(r for r in scenario.system.read("P1", "timeline").events if r.event_id == C2)
    assert [c.recorded_by for c in row.corrections] == ["nurse_b", "dm_c"]
    assert len(scenario.system.audit(corrections=True, actor="dm_c").entries) == 2


# -- the digest ---------------------------------------------------------------------------------


def test_digest_is_stable_and_covers_every_stream_and_the_access_log(scenario: Scenario) -> None:
    system = scenario.system
    first = system.digest()
    assert (first.patients, first.events, first.verified) == (2, 11, True)
    assert system.digest().sha256 == first.sha256
    # A read is logged: the ledger's digest (SPEC §6, stream heads only) stays, the one that
    # also covers the access log moves on ...
    system.log_access("dr_a", channel="cli", resource="stage", patient_id="P1")
    now = system.digest()
    assert now.sha256 == first.sha256 and now.access_log_entries == 1
    assert now.sha256_with_access_log != first.sha256_with_access_log
    # ... while the digest as of the first instant is unchanged
    later = system.digest(as_of=first.as_of)
    assert later.sha256_with_access_log == first.sha256_with_access_log


def test_digest_as_of_an_earlier_instant_ignores_what_came_later(scenario: Scenario) -> None:
    system = scenario.system
    kept = system.digest(as_of=scenario.records_done)
    assert (kept.patients, kept.events) == (2, 9)
    system.append(
        "P2",
        [{"type": "ctc_count", "occurred": "2018-03-01", "count": 1}],
        actor="dr_a",
        source="api",
    )
    system.log_access("auditor", channel="api", resource="audit", address="10.0.0.7")
    assert system.digest(as_of=scenario.records_done).sha256 == kept.sha256
    # The ISO text of the instant works too
    iso = scenario.records_done.isoformat()
    assert system.digest(as_of=iso).sha256 == kept.sha256


def _change_count(state: bytes) -> bytes:
    assert b'"count":4' in state
    return state.replace(b'"count":4', b'"count":5')


def test_changing_a_stored_event_changes_the_digest(scenario: Scenario) -> None:
    store, system = scenario.store, scenario.system
    kept = system.digest()
    # When one character of a stored CTC count is changed behind the application's back
    set_state(store, "P1", 4, _change_count(stored_state(store, "P1", 4)))
    # Then the digest (now and as of the instant it was kept) differs, and verify names it
    assert system.digest().sha256 != kept.sha256
    assert system.digest(as_of=kept.as_of).sha256 != kept.sha256
    assert system.digest().verified is False
    report = system.verify()
    assert report.first_break is not None
    assert (report.first_break.patient_id, report.first_break.version) == ("P1", 4)
    assert "hash" in report.first_break.reason


def test_an_event_rewritten_with_recomputed_hashes_still_changes_the_digest(
    scenario: Scenario,
) -> None:
    store, system = scenario.store, scenario.system
    kept = system.digest()
    # When the tamperer rewrites P2's diagnosis and recomputes its hash (the chain is consistent)
    data = msgspec.json.decode(stored_state(store, "P2", 2))
    data["histology"] = "squamous_cell_carcinoma"
    data["hash"] = event_hash(data)
    set_state(store, "P2", 2, msgspec.json.Encoder(order="sorted").encode(data))
    # Then verify passes, but the head moved, so the digest kept elsewhere does not match
    assert system.verify().ok
    assert system.digest().sha256 != kept.sha256


def test_deleting_a_stored_event_changes_the_digest(scenario: Scenario) -> None:
    kept = scenario.system.digest()
    delete_event(scenario.store, "P1", 3)
    assert scenario.system.digest().sha256 != kept.sha256
    report = scenario.system.verify()
    assert report.first_break is not None
    assert (report.first_break.patient_id, report.first_break.version) == ("P1", 4)
    assert "missing" in report.first_break.reason


def test_deleting_the_latest_event_of_a_stream_changes_the_digest(scenario: Scenario) -> None:
    kept = scenario.system.digest()
    # When the last event of P2 is removed (every remaining chain is intact)
    delete_event(scenario.store, "P2", 2)
    # Then verify cannot tell, but the digest does
    assert scenario.system.verify().ok
    after = scenario.system.digest()
    assert after.sha256 != kept.sha256
    assert after.events == kept.events - 1
    assert scenario.system.digest(as_of=kept.as_of).sha256 != kept.sha256


def test_reordering_stored_events_changes_the_digest(scenario: Scenario) -> None:
    store = scenario.store
    kept = scenario.system.digest()
    # When the contents of two stored events swap places
    third, fourth = stored_state(store, "P1", 3), stored_state(store, "P1", 4)
    set_state(store, "P1", 3, fourth)
    set_state(store, "P1", 4, third)
    assert scenario.system.digest().sha256 != kept.sha256
    report = scenario.system.verify()
    assert report.first_break is not None
    assert (report.first_break.patient_id, report.first_break.version) == ("P1", 3)


def test_an_unreadable_stored_event_changes_the_digest(scenario: Scenario) -> None:
    kept = scenario.system.digest()
    set_state(scenario.store, "P1", 9, b"\x00 not json")
    after = scenario.system.digest()
    assert after.sha256 != kept.sha256 and not after.verified
