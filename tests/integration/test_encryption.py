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
