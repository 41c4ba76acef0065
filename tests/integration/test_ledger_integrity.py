"""SPEC §6 tamper evidence: the hash chain, `verify` and `digest`, against rows changed behind
the ledger's back in the store itself (sqlite3 on the file, psycopg in the schema)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from domain.codec import decode_entry
from domain.errors import NotFound
from domain.integrity import Break
from domain.ledger.application import Ledger, Receipt, StoreConfig

ACTOR = "test-auditor"
GENESIS = "0" * 64


# -- the store, touched directly ------------------------------------------------------------------


class RawStore:
    """The stored rows of the event table, read and changed without the ledger."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.table: Any
        if config.is_postgres:
            import psycopg
            from psycopg import sql

            self._conn: Any = psycopg.connect(str(config.database_url), autocommit=True)
            tables = self._conn.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = %s AND column_name = 'state' AND table_name LIKE %s",
                (config.schema, "%events"),
            ).fetchall()
            assert len(tables) == 1, tables
            self.table = sql.Identifier(str(config.schema), tables[0][0])
            self._sql = sql
        else:
            self._conn = sqlite3.connect(str(config.sqlite_path), isolation_level=None)
            self.table = "stored_events"

    def _run(self, template: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        query: Any
        if self.config.is_postgres:
            query = self._sql.SQL(template.replace("{p}", "%s")).format(table=self.table)
        else:
            query = template.format(table=self.table, p="?")
        cursor = self._conn.execute(query, args)
        return cursor.fetchall() if cursor.description else []

    def rows(self, patient_id: str) -> list[tuple[int, bytes]]:
        found = self._run(
            "SELECT originator_version, state FROM {table} "
            "WHERE originator_id = {p} ORDER BY originator_version",
            (patient_id,),
        )
        return [(int(v), bytes(s)) for v, s in found]

    def state(self, patient_id: str, version: int) -> bytes:
        return dict(self.rows(patient_id))[version]

    def set_state(self, patient_id: str, version: int, state: bytes) -> None:
        self._run(
            "UPDATE {table} SET state = {p} WHERE originator_id = {p} AND originator_version = {p}",
            (state, patient_id, version),
        )
        assert self.state(patient_id, version) == state

    def delete(self, patient_id: str, version: int) -> None:
        self._run(
            "DELETE FROM {table} WHERE originator_id = {p} AND originator_version = {p}",
            (patient_id, version),
        )
        assert version not in dict(self.rows(patient_id))

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
def ledger(store: StoreConfig) -> Iterator[Ledger]:
    led = Ledger(store)
    yield led
    led.close()


@pytest.fixture
def raw(store: StoreConfig, ledger: Ledger) -> Iterator[RawStore]:
    # `ledger` first: its construction creates the table.
    conn = RawStore(store)
    yield conn
    conn.close()


def send(ledger: Ledger, patient_id: str, *bodies: dict[str, Any]) -> list[Receipt]:
    entries = [decode_entry(body) for body in bodies]
    return ledger.append(patient_id, entries, actor=ACTOR, source="cli")


def given_patient(ledger: Ledger, patient_id: str = "P1") -> list[Receipt]:
    """A registration and four clinical events: versions 1..5, one per append."""
    bodies: list[dict[str, Any]] = [
        {"type": "patient_registered", "occurred": "2016-05-01", "sex": "male", "birth_year": 1940},
        {"type": "diagnosis_confirmed", "occurred": "2016-05-20", "histology": "adenocarcinoma"},
        {"type": "ctc_count", "occurred": "2016-08-30", "count": 4, "note": "first draw"},
        {"type": "ctc_count", "occurred": "2016-12-30", "count": 2, "blood_volume_ml": 7.1},
        {"type": "ctc_count", "occurred": "2017-10-10", "count": 0},
    ]
    return [send(ledger, patient_id, body)[0] for body in bodies]


def only_break(ledger: Ledger, patient_id: str | None = None) -> Break:
    report = ledger.verify(patient_id)
    assert not report.ok
    assert len(report.breaks) == 1, report.breaks
    return report.breaks[0]


# -- a clean ledger -------------------------------------------------------------------------------


def test_a_clean_ledger_verifies(ledger: Ledger) -> None:
    # given two patients' streams
    given_patient(ledger, "P1")
    given_patient(ledger, "P2")
    send(ledger, "P2", {"type": "follow_up", "occurred": "2018", "status": "alive"})
    # when verified whole, or per patient, then no break is found
    report = ledger.verify()
    assert report.ok and report.first_break is None
    assert (report.patients, report.events) == (2, 11)
    one = ledger.verify("P2")
    assert one.ok and (one.patients, one.events) == (1, 6)


def test_verify_of_an_unknown_patient_is_not_found(ledger: Ledger) -> None:
    given_patient(ledger)
    with pytest.raises(NotFound):
        ledger.verify("P9")


def test_an_empty_ledger_verifies_and_has_a_digest(ledger: Ledger) -> None:
    assert ledger.verify().ok
    digest = ledger.digest()
    assert (digest.patients, digest.events) == (0, 0)
    assert digest.sha256 == hashlib.sha256(b"").hexdigest()


def test_receipts_and_history_carry_the_chain(ledger: Ledger) -> None:
    receipts = given_patient(ledger)
    history = ledger.history("P1")
    assert [e.hash for e in history] == [r.hash for r in receipts]
    assert [e.prev_hash for e in history] == [GENESIS] + [r.hash for r in receipts[:-1]]


# -- the hash, computed independently -------------------------------------------------------------


def independent_hash(data: dict[str, Any], **dumps: Any) -> str:
    """SPEC §6 with the standard library only: sorted-key compact JSON without `hash`, then
    `prev_hash`."""
    body = {k: v for k, v in data.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), **dumps)
    return hashlib.sha256(text.encode() + str(data["prev_hash"]).encode()).hexdigest()


def bytes_hash(state: bytes) -> str:
    """The same, on the stored bytes as they are: cut the `hash` member out, re-encode nothing."""
    data = json.loads(state)
    member = b'"hash":"' + data["hash"].encode() + b'",'
    assert state.count(member) == 1
    return hashlib.sha256(state.replace(member, b"") + data["prev_hash"].encode()).hexdigest()


def test_hash_is_sha256_of_sorted_json_without_hash_plus_prev_hash(
    ledger: Ledger, raw: RawStore
) -> None:
    # given events with nested objects, lists, floats, nulls, booleans and non-ASCII text
    receipts = given_patient(ledger)
    receipts += send(
        ledger,
        "P1",
        {
            "type": "imaging",
            "occurred": "2017-01",
            "date_estimated": True,
            "modality": "ct",
            "region": "chest",
            "lesions": [
                {"lesion_id": "L1", "site": "liver", "dimensions_mm": [23.5, 12, 0.25]},
                {"lesion_id": "L2", "site": "lung", "dimensions_mm": [7], "new": True},
            ],
            "note": "Läsion im Lebersegment VII — 肝转移, ≥ 2 cm",
        },
        {
            "type": "event_amended",
            "occurred": "2017-02",
            "target_event_id": str(receipts[3].event_id),
            "replacement": {"type": "ctc_count", "occurred": "2016-12-30", "count": 3},
            "reason": "recount: 3 cells, not 2 — «erreur»",
        },
    )
    # when each stored row is hashed with hashlib and json.dumps(sort_keys=True)
    rows = raw.rows("P1")
    assert [v for v, _ in rows] == list(range(1, 8))
    prev = GENESIS
    for (version, state), receipt in zip(rows, receipts, strict=True):
        data = json.loads(state)
        # then it equals the stored hash, the receipt's hash, and chains from the previous one
        assert data["prev_hash"] == prev
        assert data["version"] == version and data["patient_id"] == "P1"
        assert independent_hash(data, ensure_ascii=False) == data["hash"] == receipt.hash
        assert bytes_hash(state) == data["hash"]
        prev = data["hash"]
    assert ledger.verify("P1").ok


def test_the_canonical_form_is_utf8_not_ascii_escaped(ledger: Ledger, raw: RawStore) -> None:
    """Python's json.dumps escapes non-ASCII by default (ensure_ascii=True); msgspec writes UTF-8.
    An independent verifier must pass ensure_ascii=False, or it disagrees on such events."""
    given_patient(ledger)
    send(ledger, "P1", {"type": "follow_up", "occurred": "2018", "status": "alive", "note": "ça"})
    plain, accented = (json.loads(s) for _, s in raw.rows("P1")[-2:])
    assert independent_hash(plain) == plain["hash"]
    assert independent_hash(accented, ensure_ascii=False) == accented["hash"]
    assert independent_hash(accented) != accented["hash"]


@pytest.mark.parametrize(
    ("volume", "msgspec_text", "json_text"),
    [(0.00001, "0.00001", "1e-05"), (1e-7, "1e-7", "1e-07")],
)
def test_tiny_floats_are_written_differently_by_msgspec_and_json(
    ledger: Ledger, raw: RawStore, volume: float, msgspec_text: str, json_text: str
) -> None:
    """The schema accepts doses (and lesion diameters) > 0 however small;
    msgspec and Python's json spell such floats differently, so a verifier that re-encodes with
    json.dumps disagrees. Re-encoding nothing (cutting the `hash` member out) always agrees."""
    given_patient(ledger)
    send(
        ledger,
        "P1",
        {
            "type": "radiotherapy",
            "occurred": "2018",
            "target": "chest",
            "dose_gy": volume,
            "fractions": 1,
        },
    )
    state = raw.state("P1", 6)
    data = json.loads(state)
    assert f'"dose_gy":{msgspec_text},'.encode() in state
    assert json.dumps(volume) == json_text
    assert independent_hash(data, ensure_ascii=False) != data["hash"]
    assert bytes_hash(state) == data["hash"]
    assert ledger.verify("P1").ok


# -- tampering ------------------------------------------------------------------------------------

TAMPERS = [
    pytest.param(3, b'"count":4', b'"count":5', id="clinical-value"),
    pytest.param(3, b'"first draw"', b'"first drew"', id="note-one-letter"),
    pytest.param(4, b'"blood_volume_ml":7.1', b'"blood_volume_ml":7.5', id="float"),
    pytest.param(2, b'"adenocarcinoma"', b'"adenocarcinomb"', id="histology"),
    pytest.param(2, b'"recorded_by":"test-auditor"', b'"recorded_by":"test-auditoR"', id="actor"),
    pytest.param(2, b'"source":"cli"', b'"source":"api"', id="source"),
    pytest.param(1, b'"birth_year":1940', b'"birth_year":1941', id="registration"),
    pytest.param(5, b'"occurred":"2017-10-10"', b'"occurred":"2017-10-11"', id="date"),
]


@pytest.mark.parametrize(("version", "old", "new"), TAMPERS)
def test_a_changed_byte_is_named_by_verify(
    ledger: Ledger, raw: RawStore, version: int, old: bytes, new: bytes
) -> None:
    # given two clean streams
    given_patient(ledger, "P1")
    given_patient(ledger, "P2")
    # when one byte of one stored P1 event is changed in the store
    state = raw.state("P1", version)
    assert state.count(old) == 1 and len(old) == len(new)
    raw.set_state("P1", version, state.replace(old, new))
    # then verify names that (patient, version), and only that
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", version)
    assert "hash" in broken.reason
    whole = only_break(ledger)
    assert (whole.patient_id, whole.version) == ("P1", version)
    assert ledger.verify("P2").ok


@pytest.mark.parametrize("version", [1, 3, 5])
def test_a_changed_timestamp_is_named_by_verify(
    ledger: Ledger, raw: RawStore, version: int
) -> None:
    given_patient(ledger)
    state = raw.state("P1", version)
    at = state.index(b'"recorded_at":"') + len(b'"recorded_at":"2')
    digit = b"1" if state[at : at + 1] != b"1" else b"2"
    raw.set_state("P1", version, state[:at] + digit + state[at + 1 :])
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", version)


@pytest.mark.parametrize("field", ["hash", "prev_hash"])
def test_a_changed_hash_field_is_named_by_verify(ledger: Ledger, raw: RawStore, field: str) -> None:
    given_patient(ledger)
    state = raw.state("P1", 3)
    start = state.index(f'"{field}":"'.encode()) + len(field) + 4
    flipped = b"0" if state[start : start + 1] != b"0" else b"1"
    raw.set_state("P1", 3, state[:start] + flipped + state[start + 1 :])
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", 3)


def test_a_state_that_is_not_json_any_more_is_named_by_verify(
    ledger: Ledger, raw: RawStore
) -> None:
    given_patient(ledger)
    kept = ledger.digest()
    state = raw.state("P1", 2)
    raw.set_state("P1", 2, state[:-1])
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", 2)
    assert "JSON" in broken.reason
    # the digest covers stream heads only: a broken middle is verify's to find
    assert ledger.digest() == kept


def test_a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link(
    ledger: Ledger, raw: RawStore
) -> None:
    # given a clean stream, and its digest kept by an auditor
    given_patient(ledger)
    kept = ledger.digest()
    # when a middle event is rewritten and its own hash recomputed to match
    data = json.loads(raw.state("P1", 3))
    data["count"] = 40
    data["hash"] = independent_hash(data, ensure_ascii=False)
    raw.set_state("P1", 3, json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    # then the next event's prev_hash no longer matches: verify names (P1, 4)
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", 4)
    assert "prev_hash" in broken.reason
    assert ledger.digest() == kept  # the head is untouched; the chain is what tells


def test_a_rewritten_latest_event_changes_the_digest(ledger: Ledger, raw: RawStore) -> None:
    # given a clean stream and a kept digest
    given_patient(ledger)
    kept = ledger.digest()
    # when the latest event is rewritten with a consistent hash, the chain alone cannot tell...
    data = json.loads(raw.state("P1", 5))
    data["count"] = 9
    data["hash"] = independent_hash(data, ensure_ascii=False)
    raw.set_state("P1", 5, json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    assert ledger.verify("P1").ok
    # ...but the digest the auditor kept no longer matches
    now = ledger.digest()
    assert now.sha256 != kept.sha256 and (now.patients, now.events) == (1, 5)


def test_deleting_a_middle_event_is_detected_by_verify(ledger: Ledger, raw: RawStore) -> None:
    # given two clean streams
    given_patient(ledger, "P1")
    given_patient(ledger, "P2")
    # when P1's version 3 is deleted from the store
    raw.delete("P1", 3)
    # then verify reports the gap where the stream resumes
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", 4)
    assert "missing" in broken.reason
    whole = only_break(ledger)
    assert (whole.patient_id, whole.version) == ("P1", 4)


def test_deleting_the_first_event_is_detected_by_verify(ledger: Ledger, raw: RawStore) -> None:
    given_patient(ledger)
    raw.delete("P1", 1)
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", 2)


def test_deleting_the_latest_event_changes_the_digest(ledger: Ledger, raw: RawStore) -> None:
    # given two clean streams and the digest an auditor kept
    given_patient(ledger, "P1")
    given_patient(ledger, "P2")
    kept = ledger.digest()
    assert (kept.patients, kept.events) == (2, 10)
    assert ledger.digest() == kept  # stable while nothing changes
    # when P2's latest event is deleted, the chain that is left is whole...
    raw.delete("P2", 5)
    assert ledger.verify().ok
    # ...but the digest differs, and counts one event fewer
    now = ledger.digest()
    assert now.sha256 != kept.sha256
    assert (now.patients, now.events) == (2, 9)


def test_digest_covers_every_stream_head_in_patient_id_order(ledger: Ledger) -> None:
    heads = {}
    for patient_id in ("P2", "P10", "P1"):  # registered out of order
        heads[patient_id] = given_patient(ledger, patient_id)[-1]
    lines = "".join(f"{pid} {heads[pid].version} {heads[pid].hash}\n" for pid in sorted(heads))
    digest = ledger.digest()
    assert digest.sha256 == hashlib.sha256(lines.encode()).hexdigest()
    assert (digest.patients, digest.events) == (3, 15)
    # any new event moves it
    send(ledger, "P10", {"type": "follow_up", "occurred": "2018", "status": "alive"})
    assert ledger.digest().sha256 != digest.sha256


def test_swapping_two_rows_states_is_detected_by_verify(ledger: Ledger, raw: RawStore) -> None:
    # given a clean stream
    given_patient(ledger)
    # when the stored states of versions 3 and 4 trade places
    third, fourth = raw.state("P1", 3), raw.state("P1", 4)
    raw.set_state("P1", 3, fourth)
    raw.set_state("P1", 4, third)
    # then verify names the first misplaced one
    broken = only_break(ledger, "P1")
    assert (broken.patient_id, broken.version) == ("P1", 3)
    whole = only_break(ledger)
    assert (whole.patient_id, whole.version) == ("P1", 3)


def test_moving_an_event_to_another_patient_is_detected(ledger: Ledger, raw: RawStore) -> None:
    given_patient(ledger, "P1")
    given_patient(ledger, "P2")
    raw.set_state("P2", 3, raw.state("P1", 3))
    broken = only_break(ledger)
    assert (broken.patient_id, broken.version) == ("P2", 3)
    assert ledger.verify("P1").ok


def test_verify_reports_the_first_break_of_each_stream(ledger: Ledger, raw: RawStore) -> None:
    given_patient(ledger, "P1")
    given_patient(ledger, "P2")
    raw.set_state("P1", 4, raw.state("P1", 4).replace(b'"count":2', b'"count":3'))
    raw.set_state("P1", 5, raw.state("P1", 5).replace(b'"count":0', b'"count":1'))
    raw.delete("P2", 2)
    report = ledger.verify()
    assert sorted((b.patient_id, b.version) for b in report.breaks) == [("P1", 4), ("P2", 3)]
    assert (report.patients, report.events) == (2, 9)


def test_tampering_is_seen_by_a_fresh_ledger_on_the_same_store(
    store: StoreConfig, ledger: Ledger, raw: RawStore
) -> None:
    given_patient(ledger)
    raw.set_state("P1", 3, raw.state("P1", 3).replace(b'"count":4', b'"count":6'))
    other = Ledger(store)
    try:
        broken = only_break(other, "P1")
        assert (broken.patient_id, broken.version) == ("P1", 3)
    finally:
        other.close()
