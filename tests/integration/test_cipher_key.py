"""ONCOLEDGER_CIPHER_KEY is checked before anything is read or written (SQLite and PostgreSQL).

A store records at creation whether it is encrypted, with a key check value when it is. A wrong
key, a missing key, or a key given to a store created without one stops the service layer,
every CLI command and `serve` with one clear sentence (exit 2, the configuration is wrong), and
nothing is read or written. `verify` tells an event it cannot decrypt apart from tampering.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest
from click.testing import CliRunner
from tamper import raw

from cli.main import cli
from domain.codec import decode_entry
from domain.errors import ValidationFailed
from domain.ledger.application import Ledger, StoreConfig
from projections.root import OncoLedger

REGISTER = {"sex": "female", "occurred": "2020-01-01"}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _env(store: StoreConfig, key: str | None) -> dict[str, str | None]:
    return {
        "ONCOLEDGER_DB": store.sqlite_path,
        "ONCOLEDGER_DATABASE_URL": store.database_url,
        "ONCOLEDGER_DATABASE_SCHEMA": store.schema,
        "ONCOLEDGER_CIPHER_KEY": key,
    }


def _events_table(store: StoreConfig) -> str:
    return "oncoledger_events" if store.is_postgres else "stored_events"


def _counts(store: StoreConfig) -> tuple[int, int]:
    events = raw(store, f"SELECT COUNT(*) FROM {_events_table(store)}")[0][0]
    reads = raw(store, "SELECT COUNT(*) FROM ol_access_log")[0][0]
    return int(events), int(reads)


@pytest.fixture
def encrypted(store: StoreConfig) -> tuple[StoreConfig, str]:
    """An encrypted store with one patient; and its key."""
    key = _key()
    config = replace(store, cipher_key=key)
    with OncoLedger(config) as system:
        system.register("P1", REGISTER, actor="t", source="cli")
        system.log_access("t", channel="cli", resource="history", patient_id="P1")
    return config, key


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("wrong", "is not this store's key"),
        (None, "this store is encrypted: set ONCOLEDGER_CIPHER_KEY"),
    ],
)
def test_a_wrong_or_missing_key_stops_everything_before_any_read_or_write(
    encrypted: tuple[StoreConfig, str], given: str | None, message: str
) -> None:
    config, _ = encrypted
    key = _key() if given == "wrong" else None
    before = _counts(config)
    # when the service layer is opened with it
    with pytest.raises(ValidationFailed, match=message) as refused:
        OncoLedger(replace(config, cipher_key=key))
    assert refused.value.field == "ONCOLEDGER_CIPHER_KEY"
    # and when CLI commands run with it, reads, writes and `serve` alike
    runner = CliRunner()
    for command in (
        ["history", "P1"],
        ["record", "P1", "ctc", "--on", "2021-01-01", "--count", "1"],
        ["patient", "register", "P2", "--sex", "male", "--on", "2020-01-01"],
        ["verify"],
        ["projections", "rebuild"],
        ["token", "list"],
        ["serve", "--port", "1"],
    ):
        result = runner.invoke(cli, command, env=_env(config, key))
        # then each stops with exit 2 and the sentence, no traceback
        assert result.exit_code == 2, (command, result.output)
        assert message in result.output and "Traceback" not in result.output
    # and nothing was read (no access-log entry) or written
    assert _counts(config) == before


def test_the_right_key_opens_the_store_and_new_patients_stay_readable(
    encrypted: tuple[StoreConfig, str],
) -> None:
    config, _ = encrypted
    with OncoLedger(config) as system:
        system.register("P2", REGISTER, actor="t", source="cli")
        assert [len(system.history(p)) for p in ("P1", "P2")] == [1, 1]
        assert system.verify().ok


def test_a_key_given_to_an_unencrypted_store_is_refused(store: StoreConfig) -> None:
    # given a store created without a key
    with OncoLedger(store) as system:
        system.register("P1", REGISTER, actor="t", source="cli")
    # when it is opened with one, then it is refused: mixing ciphertext into a plaintext store
    # would leave it unreadable under either setting
    with pytest.raises(ValidationFailed, match="created unencrypted, but ONCOLEDGER_CIPHER_KEY"):
        OncoLedger(replace(store, cipher_key=_key()))
    assert raw(store, f"SELECT COUNT(*) FROM {_events_table(store)}")[0][0] == 1


def test_a_key_that_is_not_an_aes_key_is_refused(store: StoreConfig) -> None:
    result = CliRunner().invoke(cli, ["init"], env=_env(store, "not-a-key"))
    assert result.exit_code == 2, result.output
    assert "base64 AES key of 16, 24 or 32 bytes" in result.output


def test_a_store_made_before_the_check_is_checked_on_its_first_event(
    encrypted: tuple[StoreConfig, str],
) -> None:
    # given an encrypted store from before key check values (none recorded)
    config, _ = encrypted
    raw(config, "DELETE FROM ol_key_check")
    # when it is opened with another key, then its first event shows the key is wrong
    with pytest.raises(ValidationFailed, match="is not this store's key"):
        OncoLedger(replace(config, cipher_key=_key()))
    with pytest.raises(ValidationFailed, match="this store is encrypted"):
        OncoLedger(replace(config, cipher_key=None))
    assert raw(config, "SELECT COUNT(*) FROM ol_key_check")[0][0] == 0
    # when it is opened with its key, the check value is written then, and checks from now on
    with OncoLedger(config) as system:
        assert len(system.history("P1")) == 1
    assert raw(config, "SELECT encrypted FROM ol_key_check")[0][0] == 1
    raw(config, f"DELETE FROM {_events_table(config)}")  # the check needs no event now
    with pytest.raises(ValidationFailed, match="is not this store's key"):
        OncoLedger(replace(config, cipher_key=_key()))


def test_verify_tells_an_event_under_another_key_apart_from_tampering(
    encrypted: tuple[StoreConfig, str],
) -> None:
    # given an event written under another key, as happened before the key was checked
    config, _ = encrypted
    stray = Ledger(replace(config, cipher_key=_key()))
    try:
        entry = decode_entry({"type": "patient_registered", "patient_id": "P9", **REGISTER})
        stray.append("P9", [entry], actor="t", source="cli")
    finally:
        stray.close()
    with OncoLedger(config) as system:
        system.register("P2", REGISTER, actor="t", source="cli")
    # and another patient's event tampered with (its plaintext content changed, re-encrypted)
    with OncoLedger(config) as system:
        stored = system.ledger.stored_events("P2")[0]
        text = system.ledger.plaintext(stored).replace(b'"female"', b'"male"')
        cipher = system.ledger.factory.cipher()
        assert cipher is not None
        forged = cipher.encrypt(text)
        raw(
            config,
            f"UPDATE {_events_table(config)} SET state = ? WHERE originator_id = 'P2'",
            [forged],
        )
        report = system.verify()
    reasons = {b.patient_id: b.reason for b in report.breaks}
    # then verify says the first cannot be decrypted, and the second was changed
    assert reasons["P9"].startswith("cannot decrypt: wrong key?")
    assert reasons["P2"] == "hash does not match the event's content"
    assert "P1" not in reasons
