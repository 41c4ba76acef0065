"""`oncoledger migrate` (issue 12): older stores move to per-patient keys, their proofs intact."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Any

import pytest

from domain.errors import ValidationFailed
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger, migrate_store

NOTE = "migration-probe-7d2e"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _record(system: OncoLedger, patient_id: str) -> None:
    system.register(
        patient_id,
        {"occurred": "2024-01-10", "sex": "male", "note": NOTE},
        actor="nurse",
        source="cli",
    )
    system.append(
        patient_id,
        [{"type": "diagnosis_confirmed", "occurred": "2024-01-20", "histology": "other"}],
        actor="nurse",
        source="cli",
    )


def _states(system: OncoLedger) -> list[bytes]:
    return [bytes(n.state) for n in system.ledger.recorder.select_notifications(1, 1000)]


def test_a_store_in_clear_is_migrated_with_its_proofs_intact(store: StoreConfig) -> None:
    # given a store written in clear (no key), and its digest
    with OncoLedger(store) as system:
        _record(system, "P1")
        _record(system, "P2")
        before = system.digest().sha256
        histories = {p: system.history(p) for p in ("P1", "P2")}
    keyed = replace(store, cipher_key=_key())
    # (a key given to it is refused at start-up until it is migrated)
    with pytest.raises(ValidationFailed, match="created unencrypted"):
        OncoLedger(keyed)
    # when it is migrated with a key
    report = migrate_store(keyed)
    # then every event is sealed under its patient's key, content and hashes unchanged
    assert (report.events, report.sealed, report.patients, report.unsalted) == (4, 4, 2, 0)
    assert not report.was_encrypted
    with OncoLedger(keyed) as system:
        assert all(s.startswith(b"OLE1") for s in _states(system))
        assert not any(NOTE.encode() in s for s in _states(system))
        assert {p: system.history(p) for p in ("P1", "P2")} == histories
        assert system.verify().ok
        assert system.digest().sha256 == before
        # and a migrated patient can now be erased
        system.erase("P1", actor="admin", reason="request", channel="cli")
        assert system.verify().erased == ["P1"]
    # and migrating again finds nothing to do
    assert migrate_store(keyed).sealed == 0
    # and the store no longer opens without its key
    with pytest.raises(ValidationFailed, match="this store is encrypted"):
        OncoLedger(store)


def test_a_store_under_the_master_key_itself_is_migrated(store: StoreConfig) -> None:
    keyed = replace(store, cipher_key=_key())
    # given events written the way the previous version did (under the master key itself)
    with OncoLedger(keyed) as system:
        mapper: Any = system.ledger.mapper
        keys, mapper.keys = mapper.keys, None
        _record(system, "P1")
        mapper.keys = keys
        before = system.digest().sha256
    # when it is migrated
    report = migrate_store(keyed)
    # then its events are sealed per patient and verify as before
    assert (report.sealed, report.was_encrypted) == (2, True)
    with OncoLedger(keyed) as system:
        assert all(s.startswith(b"OLE1") for s in _states(system))
        assert len(system.history("P1")) == 2
        assert system.digest().sha256 == before
    # and a wrong key cannot migrate it
    with pytest.raises(ValidationFailed, match="not this store's key"):
        migrate_store(replace(store, cipher_key=_key()))


def test_migration_needs_a_key(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        _record(system, "P1")
    with pytest.raises(ValidationFailed, match="ONCOLEDGER_CIPHER_KEY"):
        migrate_store(store)
