"""A patient restored from a snapshot's state (`Patient.restored`, `InForce.restored`) is the
patient the fold of its entries gives, and goes on exactly as that one does.

Random streams of late entries, partial dates, amendments (moving an event's date, of a death,
of the registration's birth year), retractions and deaths are recorded on the aggregate; at
every version its entries and `in_force.state()` go through the snapshot's own encoding, and
the patient restored from them must equal a fold of the same decoded entries in everything it
holds (entries, idempotency keys, items and their order, tracked bodies, head), then accept or
refuse the rest of the stream alike. A copy (`Patient.copy`, items shared until changed) must
never see its twin's corrections.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import DomainError
from domain.in_force import InForce, State
from domain.ledger import snapshots
from domain.patient import Patient
from domain.stream_entries import Entries

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DATES = ["2016", "2016-05", "2016-05-10", "2017", "2017-03", "2017-03-01", "2018-08-30", "2015"]
YEARS = [None, 1940, 2015, 2016, 2017]
KINDS = ["ctc_count", "follow_up", "death", "diagnosis_confirmed", "imaging"]


def _body(kind: str, occurred: str, birth_year: int | None = None) -> dict[str, Any]:
    if kind == "death":
        return {"type": "death", "occurred": occurred}
    if kind == "follow_up":
        return {"type": "follow_up", "occurred": occurred, "status": "alive"}
    if kind == "diagnosis_confirmed":
        return {"type": "diagnosis_confirmed", "occurred": occurred, "histology": "other"}
    if kind == "imaging":
        return {"type": "imaging", "occurred": occurred, "modality": "ct", "region": "chest"}
    if kind == "patient_registered":
        body = {"type": "patient_registered", "occurred": "2015", "sex": "male"}
        return body | ({"birth_year": birth_year} if birth_year is not None else {})
    return {"type": "ctc_count", "occurred": occurred, "count": 1}


step = st.one_of(
    st.tuples(st.just("new"), st.sampled_from(KINDS), st.integers()),
    st.tuples(st.just("amend"), st.integers(0, 6), st.integers()),
    st.tuples(st.just("retract"), st.integers(0, 6), st.integers()),
    st.tuples(st.just("born"), st.sampled_from(YEARS), st.integers()),
)


def _entry(patient: Patient, op: tuple[str, Any, int]) -> ev.AnyEvent:
    kind, arg, pick = op
    occurred = DATES[pick % len(DATES)]
    if kind == "new":
        return decode_entry(_body(arg, occurred) | {"event_id": str(uuid4())})
    if kind == "born":
        target: ev.AnyEvent = patient.entries[0]
        replacement = _body("patient_registered", occurred, birth_year=arg)
    else:
        pool = patient.entries if arg == 6 else [e for e in patient.entries if not e.is_correction]
        target = pool[-1 - arg % len(pool)]
        replacement = _body(target.type, occurred, birth_year=1940)
    head = {"event_id": str(uuid4()), "target_event_id": str(target.event_id), "occurred": "2020"}
    if kind == "retract":
        return decode_entry(head | {"type": "event_retracted", "reason": "entered in error"})
    if target.is_correction:
        replacement = _body("ctc_count", occurred)
    body = {"type": "event_amended", "reason": "typo", "replacement": replacement}
    return decode_entry(head | body)


@contextmanager
def _same_salts() -> Iterator[None]:
    """The same salt for every event, so that two patients recording the same entries seal
    them alike (the same hashes), and their stored entries can be compared."""
    with mock.patch("domain.patient.secrets.token_hex", return_value="ab" * 16):
        yield


def _outcome(patient: Patient, entry: ev.AnyEvent) -> tuple[str, ...]:
    try:
        stored, created = patient.record(entry, actor="t", source="api", now=NOW)
    except DomainError as exc:
        return (type(exc).__name__, str(exc.rule), str(exc.field), str(exc))
    return ("stored" if created else "retry", str(stored.hash))


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _view(patient: Patient) -> Any:
    """Everything the aggregate holds that a rule, a read or a later append can see."""
    state = patient.in_force
    return (
        patient.id,
        patient.version,
        patient.head_hash,
        [_builtins(e) for e in patient.entries],
        [type(e) for e in patient.entries],
        patient.position,
        [
            (
                i.event_id,
                i.version,
                _builtins(i.original),
                _builtins(i.body),
                type(i.body),
                i.status,
                i.corrections,
            )
            for i in state.items
        ],
        list(state._keys),
        [(k, i.version, i.status) for k, i in state._by_id.items()],
        {c: [(k, _builtins(b)) for k, b in index.items()] for c, index in state._tracked.items()},
        state.version,
        dict(patient.status),
        [(k, _builtins(b)) for k, b in patient.effective.items()],
        list(patient.deaths),
        list(patient.diagnoses),
        patient.birth_year,
    )


def _through_snapshot(patient: Patient) -> tuple[Entries, State]:
    """The entries and the in-force state as a snapshot stores and reads them back (each
    entry decoded when it is first read)."""
    return snapshots.opened(snapshots.encoded(patient))


def _fold(patient_id: str, entries: Sequence[ev.AnyEvent]) -> Patient:
    patient = Patient(patient_id)
    for entry in entries:
        patient.apply(entry)
    return patient


def _registered() -> Patient:
    patient = Patient("P1")
    body = _body("patient_registered", "2015", birth_year=1940)
    assert _outcome(patient, decode_entry(body))[0] == "stored"
    return patient


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=25), st.data())
def test_a_restored_patient_is_the_fold_of_its_entries_and_goes_on_alike(
    ops: list[tuple[str, Any, int]], data: st.DataObject
) -> None:
    with _same_salts():
        live = _registered()
        for op in ops:
            _outcome(live, _entry(live, op))
            # when the patient is snapshotted and restored at this version
            entries, state = _through_snapshot(live)
            restored = Patient.restored(live.id, entries, state)
            # then it is the fold of the same entries, in everything
            fold = _fold(live.id, _through_snapshot(live)[0])
            assert _view(restored) == _view(fold)
            assert _view(restored)[:3] == _view(live)[:3]
        # and both take the rest of a stream alike: the same answers, the same state; also
        # one restored and never read whole before (its entries decoded only as rules read them)
        unread = Patient.restored(live.id, *_through_snapshot(live))
        for op in data.draw(st.lists(step, max_size=8)):
            entry = _entry(fold, op)
            outcome = _outcome(fold, entry)
            assert _outcome(restored, entry) == outcome, op
            assert _outcome(unread, entry) == outcome, op
            assert _view(restored) == _view(fold)
            resent = fold.entries[-1]  # a retry of what is stored answers as the first time
            assert _outcome(restored, resent) == _outcome(fold, resent)
            assert _outcome(unread, resent) == _outcome(fold, resent)
        # and a snapshot of the one never read whole (its unread entries written as the bytes
        # they were read from) restores to the same patient again
        assert _view(unread) == _view(fold)
        again = Patient.restored(live.id, *_through_snapshot(unread))
        assert _view(again) == _view(_fold(live.id, _through_snapshot(fold)[0]))


def test_a_restored_patient_keeps_the_rules_of_a_varied_history() -> None:
    # given a history with late entries, a moved date, retractions, a death retracted and
    # recorded again, and an amended birth year
    with _same_salts():
        live = _registered()
        record = [
            _body("diagnosis_confirmed", "2016-05-10"),
            _body("ctc_count", "2017-03-01"),
            _body("ctc_count", "2016"),  # late, partial
            _body("imaging", "2016-05"),
            _body("death", "2018-08-30"),
        ]
        for body in record:
            assert _outcome(live, decode_entry(body))[0] == "stored"
        draw, death = live.entries[2], live.entries[5]
        corrections: list[dict[str, Any]] = [
            {
                "type": "event_amended",
                "target_event_id": str(draw.event_id),
                "reason": "typo",
                "replacement": _body("ctc_count", "2015"),  # moved earlier
            },
            {"type": "event_retracted", "target_event_id": str(death.event_id), "reason": "no"},
            {
                "type": "event_amended",
                "target_event_id": str(live.entries[0].event_id),
                "reason": "typo",
                "replacement": _body("patient_registered", "2015", birth_year=1941),
            },
        ]
        for body in corrections:
            assert _outcome(live, decode_entry(body | {"occurred": "2020"}))[0] == "stored"
        assert _outcome(live, decode_entry(_body("death", "2019")))[0] == "stored"
        restored = Patient.restored(live.id, *_through_snapshot(live))
        fold = _fold(live.id, _through_snapshot(live)[0])
        # then the restored patient refuses and accepts as the fold does, and is the fold
        for body in (
            _body("death", "2019-05"),  # death once
            _body("ctc_count", "2021"),  # nothing after death
            _body("ctc_count", "1939"),  # before the birth year
            _body("ctc_count", "2018-01"),
        ):
            entry = decode_entry(body | {"event_id": str(uuid4())})
            assert _outcome(restored, entry) == _outcome(fold, entry)
        assert _view(restored) == _view(fold)


def test_a_state_that_does_not_fit_the_entries_is_refused() -> None:
    with _same_salts():
        live = _registered()
        for body in (_body("ctc_count", "2017"), _body("death", "2018")):
            _outcome(live, decode_entry(body))
    entries, state = _through_snapshot(live)
    for bad in (
        msgspec.structs.replace(state, items=[*state.items, 99]),  # no such version
        msgspec.structs.replace(state, corrected=[[2, 3]]),  # a death is not a correction
        msgspec.structs.replace(state, items=[1, 2, 2]),  # one item twice
        msgspec.structs.replace(state, order=state.order[:-1]),  # orders not the same length
        msgspec.structs.replace(state, tracked={"follow_up": []}),  # a type not tracked
    ):
        with pytest.raises((ValueError, LookupError)):
            Patient.restored(live.id, entries, bad)


def test_a_copy_and_its_twin_never_see_each_other_s_corrections() -> None:
    # given a patient and a copy of it (the items are shared until either side changes one)
    with _same_salts():
        original = _registered()
        for body in (_body("ctc_count", "2017"), _body("ctc_count", "2016")):
            _outcome(original, decode_entry(body))
        copy = original.copy()
        first, second = original.entries[1], original.entries[2]
        before = _view(original)

        def retract(patient: Patient, target: ev.AnyEvent) -> None:
            body = {"type": "event_retracted", "target_event_id": str(target.event_id)}
            body |= {"occurred": "2020", "reason": "no", "event_id": str(uuid4())}
            assert _outcome(patient, decode_entry(body))[0] == "stored"

        # when the copy corrects one event and the original another
        retract(copy, first)
        assert _view(original) == before
        retract(original, second)
        # then each is the fold of its own entries, and neither sees the other's correction
        assert _view(copy) == _view(_fold(copy.id, copy.entries))
        assert _view(original) == _view(_fold(original.id, original.entries))
        assert copy.status[first.event_id] == "retracted"
        assert copy.status[second.event_id] == "active"
        assert original.status[first.event_id] == "active"
        assert original.status[second.event_id] == "retracted"


def test_an_in_force_never_copied_changes_its_items_in_place() -> None:
    # The projector's fold holds items and reads their fate as corrections arrive.
    with _same_salts():
        patient = _registered()
        _outcome(patient, decode_entry(_body("ctc_count", "2017")))
    state = InForce()
    for entry in patient.entries:
        state.apply(entry)
    item = state.items[-1]
    body = {"type": "event_retracted", "target_event_id": str(item.event_id), "reason": "no"}
    with _same_salts():
        _outcome(patient, decode_entry(body | {"occurred": "2020"}))
    change, changed = state.apply(patient.entries[-1])
    assert change == "corrected" and changed is item and item.status == "retracted"


def test_an_entry_read_as_bytes_while_another_thread_decodes_them_all_still_decodes() -> None:
    # given a patient restored from its snapshot, entries still the snapshot's bytes
    with _same_salts():
        live = _registered()
        for op in [("new", "ctc_count", 1), ("new", "follow_up", 2), ("amend", 1, 3)]:
            _outcome(live, _entry(live, op))
        entries, _state = _through_snapshot(live)
    raw = entries.stored(len(entries))[0]
    assert isinstance(raw, msgspec.Raw)
    # when one thread (a history read) decodes every entry, and another had read the first
    # one as bytes just before it was replaced (simulated by putting the bytes back)
    decoded = list(entries)
    entries._items[0] = raw
    # then the second thread's read still decodes it, to the same entry
    assert entries[0] == decoded[0]
    assert entries[:1] == decoded[:1]
