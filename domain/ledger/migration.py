"""`oncoledger migrate`: seal a store's older events under per-patient keys (issue 12).

A store written before per-patient keys holds its payloads in clear, or encrypted under the
master key itself. Migration re-encrypts each such event under its patient's own data key with
its clear envelope, in one transaction (all or nothing; run again, it finds nothing to do), and
moves the store's key check to "encrypted". The event content, and so every hash, stays exactly
as it was: the chains and any digest kept before still verify. Those older events carry no salt
in their hash, so after an erasure a guessed payload of them could still be confirmed against
the stored hash; the report says how many such events there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from domain.errors import ValidationFailed
from domain.ledger.application import Ledger
from domain.ledger.db import PostgresDb, SqliteDb
from domain.ledger.key_check import FIELD, SCHEMA, check_cipher_key, check_value_of
from domain.ledger.patient_keys import is_sealed, scrub, secure


@dataclass(frozen=True)
class MigrationReport:
    events: int  # events in the store
    sealed: int  # events this run sealed under per-patient keys
    patients: int  # patients whose events were sealed
    unsalted: int  # events whose hash has no salt (recorded before salts)
    was_encrypted: bool  # the store was encrypted under the master key before


def migrate(db: SqliteDb | PostgresDb, ledger: Ledger) -> MigrationReport:
    """`db`: the ledger side's tables; `ledger` opened with the master key."""
    keys = ledger.keys
    if keys is None:
        raise ValidationFailed(
            f"migration seals events under per-patient keys wrapped by the master key: set {FIELD}",
            field=FIELD,
            rule="cipher_key",
        )
    recorded = _encrypted(db)
    was_encrypted = _first_encrypted(ledger) if recorded is None else recorded
    if was_encrypted:
        check_cipher_key(db, ledger)  # the key must be the store's own
    table = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    events = sealed = unsalted = 0
    patients: set[str] = set()
    updates: list[tuple[bytes, str, int]] = []
    for stored in _all(ledger):
        events += 1
        state = bytes(stored.state)
        if is_sealed(state):
            erased = ledger.is_erased(str(stored.originator_id))
            plain = b"" if erased else ledger.plaintext(stored)
        else:
            plain = ledger.plaintext(stored) if was_encrypted else state
            data = msgspec.json.decode(plain)
            updates.append(
                (
                    keys.seal(
                        str(stored.originator_id),
                        stored.originator_version,
                        stored.topic,
                        data,
                        plain,
                    ),
                    str(stored.originator_id),
                    stored.originator_version,
                )
            )
            patients.add(str(stored.originator_id))
        if plain and b'"salt"' not in plain:
            unsalted += 1
    secure(db)  # the old states are overwritten in place, no copy left in a free page
    with db.transaction(write=True) as cur:
        cur.executemany(
            f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            updates,
        )
        cur.execute(SCHEMA)
        cur.execute("DELETE FROM ol_key_check WHERE name = 'store'")
        cur.execute(
            "INSERT INTO ol_key_check (name, encrypted, check_value) VALUES ('store', 1, ?)",
            (check_value_of(ledger),),
        )
        sealed = len(updates)
    if sealed:
        scrub(db, [table])  # the old states leave no copy (secure_delete, checkpoint / VACUUM)
    return MigrationReport(events, sealed, len(patients), unsalted, was_encrypted)


def _encrypted(db: SqliteDb | PostgresDb) -> bool | None:
    with db.transaction(write=True) as cur:
        cur.execute(SCHEMA)
        cur.execute("SELECT encrypted FROM ol_key_check WHERE name = 'store'")
        row = cur.fetchone()
    return None if row is None else bool(row[0])


def _first_encrypted(ledger: Ledger) -> bool:
    first = ledger.recorder.select_notifications(1, 1)
    if not first:
        return False
    try:
        return not isinstance(msgspec.json.decode(bytes(first[0].state)), dict)
    except msgspec.DecodeError:
        return True


def _all(ledger: Ledger) -> Any:
    start = 1
    while True:
        batch = ledger.recorder.select_notifications(start, 1000)
        if not batch:
            return
        yield from batch
        start = batch[-1].id + 1
