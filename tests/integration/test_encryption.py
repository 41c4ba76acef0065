"""Encryption at rest (ONCOLEDGER_CIPHER_KEY): event payloads are unreadable in the store file."""

from __future__ import annotations

import base64
import os
import sqlite3
from dataclasses import replace

from domain.demo import CASE_REPORT_PATIENT
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger


def test_payloads_are_encrypted_and_everything_still_works(sqlite_store: StoreConfig) -> None:
    # given a ledger with a cipher key
    key = base64.b64encode(os.urandom(32)).decode()
    config = replace(sqlite_store, cipher_key=key)
    with OncoLedger(config) as system:
        system.record_demo(actor="demo")
        # then the projections, verification and digest work as without a key
        assert system.read(CASE_REPORT_PATIENT, "ctc").trend == "decreasing"
        assert system.verify().ok
        digest = system.digest()
    # and the stored payloads are not readable as JSON in the database file
    assert config.sqlite_path is not None
    with sqlite3.connect(config.sqlite_path) as conn:
        states = [row[0] for row in conn.execute("SELECT state FROM stored_events")]
    assert len(states) == 62
    # (each sealed under its patient's own key; the clear envelope beside it names the stream,
    # version and type, never clinical content)
    assert all(bytes(s).startswith(b"OLE1") for s in states)
    assert not any(
        b"squamous_cell_carcinoma" in bytes(s) or b"occurred" in bytes(s) for s in states
    )
    # and a second process with the same key reads the same ledger
    with OncoLedger(config) as again:
        assert again.digest().sha256 == digest.sha256
        assert len(again.history(CASE_REPORT_PATIENT)) == 27


def test_a_sealed_state_opens_only_in_its_own_slot(sqlite_store: StoreConfig) -> None:
    """The envelope names the stream and version a state was sealed for; read in any other
    slot it does not open (the quick check and the full reading of the envelope agree)."""
    from domain.ledger.application import Ledger

    config = replace(sqlite_store, cipher_key=base64.b64encode(os.urandom(32)).decode())
    with Ledger(config) as ledger:
        keys = ledger.keys
        assert keys is not None
        topic = "oncoledger:Patient.CtcCounted"
        for patient_id in ("P1", 'P"1'):  # JSON writes the second with an escape
            entry = {"type": "ctc_count", "event_id": "e", "hash": "h", "prev_hash": "p"}
            state = keys.seal(patient_id, 12, topic, entry, b"{}")
            assert keys.open(patient_id, 12, topic, state) == b"{}"
            for other_id, other_version in ((patient_id, 1), (patient_id, 120), ("P2", 12)):
                try:
                    keys.open(other_id, other_version, topic, state)
                except ValueError:
                    continue
                raise AssertionError(f"opened in slot {other_id} v{other_version}")


def test_a_patients_opener_opens_what_open_opens_and_refuses_what_it_refuses(
    sqlite_store: StoreConfig,
) -> None:
    """The batch path (`PatientKeys.opener`: the key and cipher looked up once per patient)
    opens a sealed state only in its own slot, as `open` does; a patient without a key has
    none."""
    from domain.ledger.application import Ledger

    config = replace(sqlite_store, cipher_key=base64.b64encode(os.urandom(32)).decode())
    with Ledger(config) as ledger:
        keys = ledger.keys
        assert keys is not None
        topic = "oncoledger:Patient.CtcCounted"
        assert keys.opener("NO-KEY") is None
        for patient_id in ("P1", 'P"1'):
            entry = {"type": "ctc_count", "event_id": "e", "hash": "h", "prev_hash": "p"}
            state = keys.seal(patient_id, 12, topic, entry, b'{"a":1}')
            other = keys.seal("P2", 12, topic, entry, b"{}")
            opener = keys.opener(patient_id)
            assert opener is not None
            assert opener(12, state) == keys.open(patient_id, 12, topic, state) == b'{"a":1}'
            for version, sealed in ((1, state), (120, state), (12, other), (12, b"OLE1")):
                try:
                    opener(version, sealed)
                except ValueError:
                    continue
                raise AssertionError(f"opened in slot {patient_id} v{version}")
            tampered = state[:-1] + bytes([state[-1] ^ 1])
            try:
                opener(12, tampered)
            except ValueError:
                pass
            else:
                raise AssertionError("a tampered state opened")
