"""Per-patient snapshots (domain/ledger/snapshots.py): a long stream's cold load restores the
aggregate from one sealed row and the events after it, exactly as its events give it; a
snapshot that does not open, is not one chain or does not end at the stored head is never
trusted; erasure leaves nothing of it readable; the chain is still proved from the events."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import msgspec
import pytest

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import DomainError, Gone
from domain.ledger import snapshots
from domain.ledger.application import Ledger, StoreConfig
from domain.patient import EVENT_CLASS_BY_TOPIC, Patient

PID = "P-SNAP"


@pytest.fixture
def keyed(store: StoreConfig, monkeypatch: pytest.MonkeyPatch) -> StoreConfig:
    monkeypatch.setattr(snapshots, "INTERVAL", 5)
    return replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode())


@pytest.fixture
def ledger(keyed: StoreConfig) -> Iterator[Ledger]:
    ledger = Ledger(keyed)
    try:
        yield ledger
    finally:
        ledger.close()


def _record(ledger: Ledger, count: int, patient_id: str = PID) -> None:
    registration = {"type": "patient_registered", "occurred": "2015-01-01", "sex": "female"}
    ledger.append(patient_id, [decode_entry(registration)], actor="t", source="cli")
    for i in range(count - 1):
        body = {"type": "ctc_count", "occurred": f"2016-01-{1 + i % 28:02d}", "count": i}
        ledger.append(patient_id, [decode_entry(body)], actor="t", source="cli")


def _row(ledger: Ledger, patient_id: str = PID) -> tuple[int, str, bytes] | None:
    assert ledger.patient_snapshots is not None
    with ledger.patient_snapshots.db.transaction() as cur:
        cur.execute(
            "SELECT version, head, state FROM ol_snapshots WHERE patient_id = ?", (patient_id,)
        )
        row = cur.fetchone()
    return None if row is None else (int(row[0]), str(row[1]), bytes(row[2]))


def _put_row(ledger: Ledger, version: int, head: str, state: bytes) -> None:
    assert ledger.patient_snapshots is not None
    with ledger.patient_snapshots.db.transaction(write=True) as cur:
        cur.execute("DELETE FROM ol_snapshots WHERE patient_id = ?", (PID,))
        cur.execute(
            "INSERT INTO ol_snapshots (patient_id, version, head, state) VALUES (?, ?, ?, ?)",
            (PID, version, head, state),
        )


def _from_events(ledger: Ledger, patient_id: str = PID) -> Patient:
    patient = Patient(patient_id)
    for event in ledger.events.get(patient_id):
        patient.apply(event.entry)  # type: ignore[attr-defined]
    return patient


def _state(patient: Patient) -> Any:
    return (
        patient.version,
        patient.head_hash,
        [msgspec.to_builtins(e) for e in patient.entries],
        patient.position,
        {k: msgspec.to_builtins(v) for k, v in patient.effective.items()},
        patient.status,
        list(patient.deaths),
        list(patient.diagnoses),
    )


def test_a_cold_load_restores_from_the_snapshot_exactly_as_from_the_events(
    keyed: StoreConfig, ledger: Ledger
) -> None:
    # given a stream long enough for snapshots, written by one process
    _record(ledger, 13)
    row = _row(ledger)
    assert row is not None and row[0] >= 5
    # when a new process loads it
    with Ledger(keyed) as fresh:
        assert fresh.patient_snapshots is not None
        restored = fresh.patient_snapshots.restore(PID)
        assert restored is not None and restored[0].version == row[0]
        loaded = fresh.load(PID)
        # then it is the aggregate its events give, and writing to it goes on from there
        assert _state(loaded) == _state(_from_events(fresh))
        body = {"type": "ctc_count", "occurred": "2016-03-01", "count": 1}
        (receipt,) = fresh.append(PID, [decode_entry(body)], actor="t", source="cli")
        assert receipt.version == 14
        assert fresh.verify(PID).ok
        assert fresh.history(PID)[-1].hash == receipt.hash


def test_a_tampered_snapshot_is_never_trusted(keyed: StoreConfig, ledger: Ledger) -> None:
    _record(ledger, 8)
    row = _row(ledger)
    assert row is not None
    version, head, state = row
    flipped = state[:-1] + bytes([state[-1] ^ 1])
    for bad in (
        (version, head, flipped),  # altered bytes: does not open
        (version - 1, head, state),  # another slot claimed: does not open
        (version, "f" * 64, state),  # another head claimed: does not open
    ):
        _put_row(ledger, *bad)
        with Ledger(keyed) as fresh:
            assert fresh.patient_snapshots is not None
            assert fresh.patient_snapshots.restore(PID) is None
            assert _state(fresh.load(PID)) == _state(_from_events(fresh))
            assert fresh.verify(PID).ok


def test_a_snapshot_not_of_the_stored_chain_is_never_trusted(
    keyed: StoreConfig, ledger: Ledger
) -> None:
    # given a well-sealed snapshot whose head is not the hash of the stored event at its
    # version (as a restored or replaced store would leave)
    _record(ledger, 8)
    stored = list(ledger.load(PID).entries)
    forged = Patient(PID)
    for entry in [*stored[:-1], msgspec.structs.replace(stored[-1], hash="e" * 64)]:
        forged.apply(entry)
    assert ledger.patient_snapshots is not None
    ledger.patient_snapshots.forget(PID)
    ledger.patient_snapshots.save(forged)
    row = _row(ledger)
    assert row is not None and row[1] == "e" * 64
    # then a new process opens it, finds it is not the stored chain, and loads the events
    with Ledger(keyed) as fresh:
        assert fresh.patient_snapshots is not None
        assert fresh.patient_snapshots.restore(PID) is not None  # it opens...
        loaded = fresh.load(PID)  # ...but is not trusted
        assert loaded.head_hash != "e" * 64
        assert _state(loaded) == _state(_from_events(fresh))


def test_erasure_leaves_the_snapshot_unreadable(keyed: StoreConfig, ledger: Ledger) -> None:
    # given a patient with a snapshot, and that snapshot's bytes as stored
    _record(ledger, 8)
    _record(ledger, 8, patient_id="P-OTHER")
    row = _row(ledger)
    assert row is not None
    # when the patient is erased
    ledger.erase(PID, actor="admin", reason="request")
    # then its snapshot row is gone, and the same bytes put back do not open (the key is
    # destroyed), while the other patient's snapshot still serves
    assert _row(ledger) is None
    _put_row(ledger, *row)
    with Ledger(keyed) as fresh:
        assert fresh.patient_snapshots is not None
        assert fresh.patient_snapshots.restore(PID) is None
        with pytest.raises(Gone):
            fresh.load(PID)
        assert fresh.patient_snapshots.restore("P-OTHER") is not None
        assert fresh.load("P-OTHER").version == 8


def test_no_snapshot_is_written_behind_another_process_s_erasure(
    keyed: StoreConfig, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a process that holds a patient and its data key in memory
    _record(ledger, 8)
    patient, key = _from_events(ledger), ledger.keys.key(PID) if ledger.keys else None
    assert key is not None
    # when another process erases the patient, and the first one then writes a snapshot with
    # the key it still remembers (it learns of an erasure elsewhere within a second)
    with Ledger(keyed) as other:
        other.erase(PID, actor="admin", reason="request")
    assert ledger.keys is not None and ledger.patient_snapshots is not None
    monkeypatch.setattr(ledger.keys, "key", lambda patient_id: key)
    ledger.patient_snapshots.save(patient)
    # then no row is left behind the erasure
    assert _row(ledger) is None


def test_a_store_without_a_master_key_keeps_no_snapshots(store: StoreConfig) -> None:
    with Ledger(store) as ledger:
        _record(ledger, 3)
        assert ledger.patient_snapshots is None
        assert ledger.load(PID).version == 3


def _varied(ledger: Ledger, patient_id: str = PID) -> None:
    """A history with late entries, partial dates, an amendment moving a date, retractions,
    a death retracted and recorded again, and an amended birth year."""

    def put(body: dict[str, Any]) -> ev.AnyEvent:
        (receipt,) = ledger.append(patient_id, [decode_entry(body)], actor="t", source="cli")
        return ledger.history(patient_id)[receipt.version - 1]

    registration = put(
        {"type": "patient_registered", "occurred": "2015", "sex": "male", "birth_year": 1940}
    )
    put({"type": "diagnosis_confirmed", "occurred": "2016-05-10", "histology": "other"})
    draws = [put({"type": "ctc_count", "occurred": day, "count": 3}) for day in DAYS]
    death = put({"type": "death", "occurred": "2018-08-30"})
    fix = {"occurred": "2020", "reason": "typo"}
    put(fix | {"type": "event_retracted", "target_event_id": str(death.event_id)})
    for draw, day in zip(draws[::3], ("2015-02", "2019", "2016"), strict=False):
        replacement = {"type": "ctc_count", "occurred": day, "count": 5}
        target = {"target_event_id": str(draw.event_id), "replacement": replacement}
        put(fix | {"type": "event_amended"} | target)
    put(fix | {"type": "event_retracted", "target_event_id": str(draws[1].event_id)})
    born = {"type": "patient_registered", "occurred": "2015", "sex": "male", "birth_year": 1941}
    target = {"target_event_id": str(registration.event_id), "replacement": born}
    put(fix | {"type": "event_amended"} | target)
    put({"type": "death", "occurred": "2019-06"})


DAYS = ("2017-03-01", "2016", "2016-07", "2018-01-02", "2017", "2016-05-10", "2018-08")


def _aggregate(patient: Patient) -> Any:
    items = patient.in_force.items
    return (
        _state(patient),
        [(i.event_id, i.version, msgspec.to_builtins(i.body), i.status) for i in items],
        [i.corrections for i in items],
        patient.in_force._keys,
        patient.in_force.version,
        patient.birth_year,
    )


def test_a_varied_history_restores_as_its_events_give_it_and_keeps_its_rules(
    keyed: StoreConfig, ledger: Ledger
) -> None:
    # given a varied history with snapshots, and another patient erased beside it
    _varied(ledger)
    _record(ledger, 6, patient_id="P-ERASED")
    ledger.erase("P-ERASED", actor="admin", reason="request")
    row = _row(ledger)
    assert row is not None and row[0] >= 15
    # when a new process loads it
    with Ledger(keyed) as fresh, Ledger(keyed) as other:
        assert fresh.patient_snapshots is not None
        restored = fresh.patient_snapshots.restore(PID)
        assert restored is not None and restored[0].version == row[0]
        # then it is what its events give, item for item
        assert _aggregate(fresh.load(PID)) == _aggregate(_from_events(fresh))
        # and it refuses and accepts as a patient loaded from its events does
        # (`fresh` keeps the restored patient; `other` folds the events every time)
        other.patient_snapshots = None
        for body in (
            {"type": "death", "occurred": "2019-07"},  # death once
            {"type": "ctc_count", "occurred": "2021", "count": 1},  # after the death
            {"type": "ctc_count", "occurred": "1939", "count": 1},  # before birth
            {"type": "ctc_count", "occurred": "2019-06", "count": 1},
        ):
            answers = []
            other._streams.take(PID)
            for led in (fresh, other):
                try:
                    (r,) = led.append(PID, [decode_entry(body)], actor="t", source="cli")
                    answers.append(("stored", r.version))
                    break  # the second one would record it twice
                except DomainError as exc:
                    answers.append((type(exc).__name__, exc.rule, exc.field, str(exc)))
            assert len(answers) == 1 or answers[0] == answers[1], body
        assert _aggregate(fresh.load(PID)) == _aggregate(_from_events(fresh))
        with pytest.raises(Gone):
            fresh.load("P-ERASED")
        assert fresh.verify(PID).ok


@pytest.mark.parametrize("former", ["v1", "v2 msgpack"])
def test_a_snapshot_of_a_former_format_is_never_misread_and_is_taken_again(
    keyed: StoreConfig, ledger: Ledger, former: str
) -> None:
    # given a patient whose snapshot is of a former format (v1: its entries only, in JSON;
    # v2: its entries decoded whole and the in-force state, in MessagePack), sealed under the
    # same key with that format's associated data
    _varied(ledger)
    patient = _from_events(ledger)
    assert ledger.keys is not None
    key = ledger.keys.key(PID)
    assert key is not None
    old_format = f"oncoledger snapshot {former} " + ",".join(
        f"{topic}={cls.class_version}" for topic, cls in sorted(EVENT_CLASS_BY_TOPIC.items())
    )
    aad = f"{old_format}\n{PID}\n{patient.version}\n{patient.head_hash}".encode()
    nonce = os.urandom(12)
    entries = list(patient.entries)
    plain = (
        ev.encode(entries)
        if former == "v1"
        else msgspec.msgpack.Encoder(uuid_format="bytes").encode(
            (entries, patient.in_force.state())
        )
    )
    sealed = ledger.keys.cipher(key).encrypt(nonce, plain, aad)
    _put_row(ledger, patient.version, patient.head_hash, nonce + sealed)
    with Ledger(keyed) as fresh:
        # then a new process does not read it, loads the events...
        assert fresh.patient_snapshots is not None
        assert fresh.patient_snapshots.restore(PID) is None
        assert _aggregate(fresh.load(PID)) == _aggregate(_from_events(fresh))
        # ...and its next append writes the snapshot again, in this format
        body = {"type": "ctc_count", "occurred": "2019-06", "count": 1}
        fresh.append(PID, [decode_entry(body)], actor="t", source="cli")
        row = _row(fresh)
        assert row is not None and row[0] == patient.version + 1
    with Ledger(keyed) as again:
        assert again.patient_snapshots is not None
        restored = again.patient_snapshots.restore(PID)
        assert restored is not None and restored[0].version == patient.version + 1
        assert _aggregate(again.load(PID)) == _aggregate(_from_events(again))
