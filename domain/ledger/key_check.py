"""The cipher key check: is ONCOLEDGER_CIPHER_KEY this store's key? Asked before anything else.

When a store is created it records whether it is encrypted and, if it is, a key check value: a
known text encrypted under its key (AES-GCM authenticates, so only that key decrypts it). Every
process that opens the store compares its key with that record first, so a wrong or missing key
stops it with a clear message before a single event is read or written under that key.

A key given to a store created without one is refused too: its events are plaintext, and
encrypting only the later ones would leave a store that no single setting can read.

A store made before this check has no record: its first stored event decides (plaintext JSON,
or ciphertext that this key decrypts or not), and the record is written then.

The record lives beside the ledger (with the access log and tokens) and is never rebuilt.
"""

from __future__ import annotations

import base64
from typing import Any, NoReturn

import msgspec

from domain.errors import NotFound, ValidationFailed
from domain.ledger.application import Ledger, check_key_format
from domain.ledger.db import PostgresDb, SqliteDb
from domain.ledger.patient_keys import is_sealed

KEY_CHECK_TEXT = b"oncoledger cipher key check v1"
FIELD = "ONCOLEDGER_CIPHER_KEY"
SCHEMA = """CREATE TABLE IF NOT EXISTS ol_key_check (
    name TEXT PRIMARY KEY, encrypted BIGINT NOT NULL, check_value TEXT)"""


def check_cipher_key(db: SqliteDb | PostgresDb, ledger: Ledger) -> None:
    """Refuse (`ValidationFailed` naming ONCOLEDGER_CIPHER_KEY) a key that is not the store's.
    `db`: the ledger side's tables (`open_db(config, side="ledger")`)."""
    cipher = ledger.factory.cipher()
    with db.transaction(write=True) as cur:
        if db.is_postgres:
            cur.execute("SELECT pg_advisory_xact_lock(7316003)")
        cur.execute(SCHEMA)
        cur.execute("SELECT encrypted, check_value FROM ol_key_check WHERE name = 'store'")
        row = cur.fetchone()
        if row is None:
            encrypted = _first_event_encrypted(ledger, cipher)
            check = _check_value(cipher) if encrypted else None
            cur.execute(
                "INSERT INTO ol_key_check (name, encrypted, check_value) VALUES ('store', ?, ?)",
                (int(encrypted), check),
            )
            return
    _compare(cipher, bool(row[0]), row[1])


def rotate_master_key(db: SqliteDb | PostgresDb, ledger: Ledger, new_key: str) -> int:
    """Re-wrap every patient key under `new_key` and move the key check to it, in one
    transaction; the events are not touched. Returns how many keys were re-wrapped."""
    from eventsourcing.cipher import AESCipher
    from eventsourcing.utils import Environment

    check_key_format(new_key)
    if ledger.keys is None:
        _refuse_missing_key()
    first = ledger.recorder.select_notifications(1, 1)
    if first and not is_sealed(bytes(first[0].state)):
        raise ValidationFailed(
            "this store holds events written before per-patient keys, under the master key "
            "itself: a new master key would leave them unreadable; nothing was changed",
            field=FIELD,
            rule="cipher_key",
        )
    cipher = AESCipher(Environment(env={"CIPHER_KEY": new_key}))

    def move_check(cur: Any) -> None:
        cur.execute(
            "UPDATE ol_key_check SET check_value = ? WHERE name = 'store'", (_check_value(cipher),)
        )

    return ledger.keys.rotate(new_key, also=move_check)


def _compare(cipher: Any, encrypted: bool, check_value: str | None) -> None:
    if not encrypted:
        if cipher is not None:
            _refuse_key_on_plain_store()
        return
    if cipher is None:
        _refuse_missing_key()
    if not _decrypts(cipher, base64.b64decode(check_value or "")):
        _refuse_wrong_key()


def _first_event_encrypted(ledger: Ledger, cipher: Any) -> bool:
    """A store without a record: what its first event says (a new store: what the key says)."""
    first = ledger.recorder.select_notifications(1, 1)
    if not first:
        return cipher is not None
    state = bytes(first[0].state)
    if is_sealed(state):  # under a per-patient key: the master key must unwrap that key
        if cipher is None:
            _refuse_missing_key()
        try:
            ledger.plaintext(first[0])
        except (ValueError, ValidationFailed):
            _refuse_wrong_key()
        except NotFound:  # the first patient was erased: its key cannot tell
            pass
        return True
    plaintext = _is_json_object(state)
    if cipher is None:
        if not plaintext:
            _refuse_missing_key()
        return False
    if plaintext:
        _refuse_key_on_plain_store()
    if not _decrypts(cipher, state):
        _refuse_wrong_key()
    return True


def check_value_of(ledger: Ledger) -> str:
    """The key check value of the ledger's master key."""
    return _check_value(ledger.factory.cipher())


def _check_value(cipher: Any) -> str:
    return base64.b64encode(cipher.encrypt(KEY_CHECK_TEXT)).decode()


def _decrypts(cipher: Any, ciphertext: bytes) -> bool:
    try:
        cipher.decrypt(ciphertext)
    except ValueError:
        return False
    return True


def _is_json_object(state: bytes) -> bool:
    try:
        return isinstance(msgspec.json.decode(state), dict)
    except msgspec.DecodeError:
        return False


def _refuse_wrong_key() -> NoReturn:
    raise ValidationFailed(
        f"{FIELD} is not this store's key (it does not decrypt the store's key check value): "
        "set the key the store was created with; nothing was read or written",
        field=FIELD,
        rule="cipher_key",
    )


def _refuse_missing_key() -> NoReturn:
    raise ValidationFailed(
        f"this store is encrypted: set {FIELD} to its key (or, for a SQLite store, put the "
        "key in the file `<db>.key` beside it, as init/demo/serve make it); nothing was read "
        "or written",
        field=FIELD,
        rule="cipher_key",
    )


def _refuse_key_on_plain_store() -> NoReturn:
    raise ValidationFailed(
        f"this store was created unencrypted, but {FIELD} is set: unset it (events written "
        "under a key beside plaintext ones would leave a store no one setting can read); "
        "nothing was read or written",
        field=FIELD,
        rule="cipher_key",
    )
