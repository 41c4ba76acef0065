"""Erasure of one patient by crypto-shredding (issue 12): the key goes, the chain stays provable.

Three patients; one is erased. Its payloads can no longer be decrypted, its read models and
cohort rows are gone, reads answer Gone, writes are refused; verify passes and names it erased,
a digest taken before still matches; the other two are untouched byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.errors import Gone, NotFound, RuleViolation, ValidationFailed
from domain.ledger.application import StoreConfig
from domain.ledger.patient_keys import envelope_of
from domain.patient import GENESIS_HASH
from projections.root import OncoLedger

PATIENTS = ("P-ERASE-1", "P-ERASE-2", "P-ERASE-3")
ERASED = PATIENTS[1]
NOTE = "probe-note-3f9a1c: lives in a Dnipro flat, daughter Olena"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def keyed(store: StoreConfig) -> StoreConfig:
    return replace(store, cipher_key=_key())


def _record(system: OncoLedger, patient_id: str) -> None:
    system.register(
        patient_id,
        {"occurred": "2024-01-10", "sex": "female", "birth_year": 1961, "note": NOTE + patient_id},
        actor="nurse",
        source="cli",
    )
    system.append(
        patient_id,
        [
            {
                "type": "diagnosis_confirmed",
                "occurred": "2024-01-20",
                "histology": "squamous_cell_carcinoma",
                "note": NOTE + patient_id,
            }
        ],
        actor="nurse",
        source="cli",
    )


def _stored(system: OncoLedger, patient_id: str) -> list[bytes]:
    return [bytes(s.state) for s in system.ledger.stored_events(patient_id)]


def _docs(system: OncoLedger, patient_id: str) -> dict[str, bytes | None]:
    return {v: system.views.doc(patient_id, v) for v in ("timeline", "stage", "ctc", "survival")}


def _survival_rows(system: OncoLedger, patient_id: str) -> int:
    with system.views.db.transaction() as cur:
        cur.execute("SELECT count(*) FROM ol_survival WHERE patient_id = ?", (patient_id,))
        return int(cur.fetchone()[0])


def test_erasing_one_of_three_patients(keyed: StoreConfig) -> None:
    # given three patients, and what an outsider kept before the erasure
    with OncoLedger(keyed) as system:
        for patient_id in PATIENTS:
            _record(system, patient_id)
        before = system.digest()
        kept = {p: (_stored(system, p), _docs(system, p)) for p in PATIENTS if p != ERASED}
        assert _survival_rows(system, ERASED) == 1
        # when an admin erases the second one
        erasure = system.erase(ERASED, actor="admin", reason="GDPR Art. 17 request", channel="cli")
        assert (erasure.erased_by, erasure.reason, erasure.created) == (
            "admin",
            "GDPR Art. 17 request",
            True,
        )
        # then its payloads cannot be decrypted: the key is destroyed
        with system.ledger.keys.db.transaction() as cur:  # type: ignore[union-attr]
            cur.execute("SELECT wrapped FROM ol_patient_keys WHERE patient_id = ?", (ERASED,))
            assert cur.fetchone()[0] is None
        for stored in system.ledger.stored_events(ERASED):
            with pytest.raises(Gone):
                system.ledger.plaintext(stored)
        # and its read models, cohort row and survival row are gone
        assert all(doc is None for doc in _docs(system, ERASED).values())
        assert _survival_rows(system, ERASED) == 0
        cohort = [row.patient_id for row in system.patients(limit=50).patients]
        assert cohort == [PATIENTS[0], PATIENTS[2]]
        # and every clinical read answers Gone, naming who erased it and why
        for read in (
            lambda: system.history(ERASED),
            lambda: system.read(ERASED, "timeline"),
            lambda: system.patient(ERASED),
            lambda: system.export(ERASED),
        ):
            with pytest.raises(Gone, match=r"GDPR Art\. 17 request"):
                read()
        # and writes to the erased id are refused, a new registration too
        with pytest.raises(Gone):
            system.append(
                ERASED,
                [{"type": "diagnosis_confirmed", "occurred": "2024-02-01", "histology": "other"}],
                actor="nurse",
                source="cli",
            )
        with pytest.raises(Gone):
            system.register(
                ERASED, {"occurred": "2024-01-10", "sex": "male"}, actor="x", source="cli"
            )
        # and verify passes, reporting the stream as erased; the digest kept before still matches
        report = system.verify()
        assert report.ok and report.erased == [ERASED] and report.events == 6
        assert system.digest().sha256 == before.sha256
        # and the other two patients are untouched byte for byte
        for patient_id, (states, docs) in kept.items():
            assert _stored(system, patient_id) == states
            assert _docs(system, patient_id) == docs
        # and auditors still see the erased stream's envelopes, without content
        audit = system.audit(ERASED).entries
        assert [(e.version, e.type, e.recorded_by) for e in audit] == [
            (1, "patient_registered", "nurse"),
            (2, "diagnosis_confirmed", "nurse"),
        ]
        # and the erasure itself is in the trail: who, when, why
        assert [(e.patient_id, e.erased_by, e.reason) for e in system.erasures()] == [
            (ERASED, "admin", "GDPR Art. 17 request")
        ]
        logged = system.access_log.query(ERASED, None, None, None, 100).entries
        assert [(a.actor, a.resource) for a in logged] == [("admin", "erasure")]
        # and erasing again changes nothing and answers with the first erasure
        again = system.erase(ERASED, actor="other-admin", reason="again", channel="cli")
        assert (again.created, again.erased_by, again.erased_at) == (
            False,
            "admin",
            erasure.erased_at,
        )
    # and another process (a restart) sees the same: erased, verified, the rest readable
    with OncoLedger(keyed) as reopened:
        assert reopened.ledger.is_erased(ERASED)
        with pytest.raises(Gone):
            reopened.history(ERASED)
        assert reopened.verify().erased == [ERASED]
        assert len(reopened.history(PATIENTS[0])) == 2
        reopened.views.rebuild()
        assert [r.patient_id for r in reopened.patients(limit=50).patients] == [
            PATIENTS[0],
            PATIENTS[2],
        ]
        assert len(reopened.audit(ERASED).entries) == 2
        assert reopened.digest().sha256 == before.sha256


REGISTRATION = {"occurred": "2024-01-10", "sex": "female", "birth_year": 1961}


def _registered_envelope(system: OncoLedger) -> dict[str, Any]:
    system.register(ERASED, REGISTRATION, actor="nurse", source="cli")
    return envelope_of(bytes(system.ledger.stored_events(ERASED)[0].state))


def _guessed_hash(envelope: dict[str, Any], sex: str, year: int, salt: str | None) -> str:
    """What an attacker holding the clear envelope computes for one guessed registration."""
    guess: dict[str, Any] = {
        "type": "patient_registered",
        "event_id": envelope["event_id"],
        "patient_id": ERASED,
        "occurred": "2024-01-10",
        "date_estimated": False,
        "note": None,
        "version": 1,
        "recorded_at": envelope["recorded_at"],
        "recorded_by": envelope["recorded_by"],
        "source": envelope["source"],
        "prev_hash": GENESIS_HASH,
        "sex": sex,
        "birth_year": year,
        "primary_site": "esophagus",
    }
    if salt is not None:
        guess["salt"] = salt
    encoded = msgspec.json.Encoder(order="sorted").encode(guess)
    return hashlib.sha256(encoded + GENESIS_HASH.encode()).hexdigest()


def test_a_guessed_registration_does_not_reproduce_the_stored_hash(keyed: StoreConfig) -> None:
    # given an erased patient whose registration is one of a few hundred possibilities
    with OncoLedger(keyed) as system:
        envelope = _registered_envelope(system)
        system.erase(ERASED, actor="admin", reason="request", channel="cli")
    # when an attacker with the clear envelope tries every sex and birth year, the true one too
    guesses = [
        _guessed_hash(envelope, sex, year, salt=None)
        for sex in ("female", "male", "other", "unknown")
        for year in range(1900, 2027)
    ]
    # then no guess reproduces the stored hash: the random salt was destroyed with the key
    assert envelope["hash"] not in guesses


def test_the_guess_reproduces_the_hash_only_with_the_salt(keyed: StoreConfig) -> None:
    # The test above can fail: with the salt (readable before erasure, inside the ciphertext)
    # the attacker's encoding of the true registration gives exactly the stored hash.
    with OncoLedger(keyed) as system:
        envelope = _registered_envelope(system)
        stored = system.ledger.stored_events(ERASED)[0]
        salt = msgspec.json.decode(system.ledger.plaintext(stored))["salt"]
    assert len(salt) == 32  # 128 bits, hex
    assert _guessed_hash(envelope, "female", 1961, salt=salt) == envelope["hash"]
    assert _guessed_hash(envelope, "female", 1961, salt=None) != envelope["hash"]


def test_erasure_needs_the_master_key_and_a_registered_patient(store: StoreConfig) -> None:
    # given a store without a master key
    with OncoLedger(store) as system:
        system.register(
            P := "P-PLAIN", {"occurred": "2024-01-10", "sex": "male"}, actor="n", source="cli"
        )
        # then erasure is refused, naming the key: clear payloads cannot be crypto-shredded
        with pytest.raises(ValidationFailed) as refused:
            system.erase(P, actor="admin", reason="request", channel="cli")
        assert refused.value.field == "ONCOLEDGER_CIPHER_KEY"
        assert len(system.history(P)) == 1


def test_erasing_an_unknown_patient_or_without_a_reason_is_refused(keyed: StoreConfig) -> None:
    with OncoLedger(keyed) as system:
        with pytest.raises(NotFound):
            system.erase("P-NOBODY", actor="admin", reason="request", channel="cli")
        _record(system, PATIENTS[0])
        with pytest.raises(ValidationFailed) as refused:
            system.erase(PATIENTS[0], actor="admin", reason="  ", channel="cli")
        assert refused.value.field == "reason"
        assert len(system.history(PATIENTS[0])) == 2


def test_nothing_of_the_erased_patient_is_left_in_any_store_file(sqlite_store: StoreConfig) -> None:
    # given a SQLite store with an erased patient, and its key as it was before
    config = replace(sqlite_store, cipher_key=_key())
    with OncoLedger(config) as system:
        for patient_id in PATIENTS:
            _record(system, patient_id)
        keys = system.ledger.keys
        assert keys is not None
        raw_key = keys.key(ERASED)
        assert raw_key is not None
        with keys.db.transaction() as cur:
            cur.execute("SELECT wrapped FROM ol_patient_keys WHERE patient_id = ?", (ERASED,))
            wrapped = str(cur.fetchone()[0])
        system.erase(ERASED, actor="admin", reason="request", channel="cli")
    # then no file of the store holds the key (raw or wrapped) or the erased patient's note;
    # the views hold no bodies (issue 11), so no note is in clear in any file, while the
    # change audit's clear envelopes still name the other patients
    assert config.sqlite_path is not None
    files = [p for p in Path(config.sqlite_path).parent.iterdir() if p.is_file()]
    assert files
    content = b"".join(p.read_bytes() for p in files)
    assert raw_key not in content
    assert wrapped.encode() not in content
    assert base64.b64decode(wrapped) not in content
    assert (NOTE + ERASED).encode() not in content
    assert (NOTE + PATIENTS[0]).encode() not in content
    assert PATIENTS[0].encode() in content
    with OncoLedger(config) as system:
        assert NOTE + PATIENTS[0] in system.read_json(PATIENTS[0], "timeline").decode()


def test_rotating_the_master_key_rewraps_every_patient_key(keyed: StoreConfig) -> None:
    # given a store with two patients, one erased
    with OncoLedger(keyed) as system:
        _record(system, PATIENTS[0])
        _record(system, ERASED)
        system.erase(ERASED, actor="admin", reason="request", channel="cli")
        states = _stored(system, PATIENTS[0])
        # when the master key is rotated
        new_key = _key()
        assert system.rotate_keys(new_key, actor="admin", channel="cli") == 1
        # then the events are untouched
        assert _stored(system, PATIENTS[0]) == states
    # and the store opens with the new key only, and reads as before
    rotated = replace(keyed, cipher_key=new_key)
    with OncoLedger(rotated) as reopened:
        assert len(reopened.history(PATIENTS[0])) == 2
        assert reopened.verify().ok
        assert reopened.ledger.is_erased(ERASED)
        resources = [
            a.resource for a in reopened.access_log.query(None, None, None, None, 100).entries
        ]
        assert "keys-rotate" in resources
    with pytest.raises(ValidationFailed, match="not this store's key"):
        OncoLedger(keyed)


def test_a_store_written_before_per_patient_keys_opens_and_refuses_a_false_erasure(
    keyed: StoreConfig,
) -> None:
    # given events written the way the previous version wrote them (under the master key)
    with OncoLedger(keyed) as system:
        mapper: Any = system.ledger.mapper
        keys, mapper.keys = mapper.keys, None
        _record(system, PATIENTS[0])
        mapper.keys = keys
        legacy = _stored(system, PATIENTS[0])
        assert not any(s.startswith(b"OLE1") for s in legacy)
    # when the store is opened by this version
    with OncoLedger(keyed) as system:
        # then the old events read and verify as before, and new ones are sealed per patient
        assert len(system.history(PATIENTS[0])) == 2
        _record(system, PATIENTS[1])
        assert all(s.startswith(b"OLE1") for s in _stored(system, PATIENTS[1]))
        assert system.verify().ok
        # and erasing a patient with old events is refused: its key would not erase them
        with pytest.raises(RuleViolation) as refused:
            system.erase(PATIENTS[0], actor="admin", reason="request", channel="cli")
        assert refused.value.rule == "erasable"
        assert not system.ledger.is_erased(PATIENTS[0])
        assert len(system.history(PATIENTS[0])) == 2


def test_an_erasure_by_another_process_reaches_this_one(
    keyed: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two processes on one store, both having read the patient (its key in memory)
    import domain.ledger.patient_keys

    monkeypatch.setattr(domain.ledger.patient_keys, "RECHECK", 0.0)
    with OncoLedger(keyed) as first, OncoLedger(keyed) as second:
        _record(first, ERASED)
        assert len(second.history(ERASED)) == 2
        # when the first erases it
        first.erase(ERASED, actor="admin", reason="request", channel="cli")
        # then the second refuses reads and writes of it too (once its key is asked again)
        with pytest.raises(Gone):
            second.history(ERASED)
        with pytest.raises(Gone):
            second.append(
                ERASED,
                [{"type": "diagnosis_confirmed", "occurred": "2024-02-01", "histology": "other"}],
                actor="nurse",
                source="cli",
            )
