"""The patients' keys and ciphers a process keeps are bounded (a rebuild reads every patient):
what was dropped is looked up again, and an erasure still holds."""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest

from domain.errors import Gone
from domain.ledger import patient_keys
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger


def test_kept_keys_and_ciphers_are_bounded(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patient_keys, "KEYS_KEPT", 3)
    monkeypatch.setattr(patient_keys, "CIPHERS_KEPT", 2)
    keyed = replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode())
    patients = [f"KEEP-{i}" for i in range(6)]
    with OncoLedger(keyed) as system:
        for pid in patients:
            system.register(pid, {"occurred": "2020-01-01", "sex": "male"}, actor="a", source="cli")
        system.erase(patients[0], actor="dpo", reason="request", channel="cli")
        for pid in patients[1:] * 2:
            assert len(system.history(pid)) == 1
        keys = system.ledger.keys
        assert keys is not None
        assert len(keys._cache) <= 3
        assert len(keys._aeads) <= 2
        # the erased patient's entry was dropped long ago: it is still erased
        assert patients[0] not in keys._cache
        with pytest.raises(Gone):
            system.history(patients[0])
        system.views.rebuild()
        assert system.views.status()["lag"] == 0
        assert system.views.patients(count=True).total == len(patients) - 1
