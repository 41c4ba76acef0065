"""One chain checker and one digest (`domain.integrity`), the same answers as every chain's own.

The access log and the ledger's stored-head digest still run their own loops (their modules
belong to the write side's owners); these tests pin that the shared functions give exactly
their answers, intact and tampered, so each caller can be switched to them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tamper import raw

from domain.integrity import (
    ACCESS_LOG_ROWS,
    ChainChecker,
    digest_heads,
    record_hash,
    stored_heads,
    verify_sequence,
)
from domain.ledger.access_log import row_hash
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

COLUMNS = ("seq", "at", "actor", "channel", "resource", "patient_id", "address", "prev_hash")
TAMPERS: dict[str, list[str]] = {
    "untouched": [],
    "updated": ["UPDATE ol_access_log SET actor = 'someone_else' WHERE seq = 2"],
    "deleted": ["DELETE FROM ol_access_log WHERE seq = 2"],
    "latest removed": ["DELETE FROM ol_access_log WHERE seq = 5"],
    "reordered": [
        "UPDATE ol_access_log SET seq = -3 WHERE seq = 3",
        "UPDATE ol_access_log SET seq = 3 WHERE seq = 4",
        "UPDATE ol_access_log SET seq = 4 WHERE seq = -3",
    ],
    "relinked": ["UPDATE ol_access_log SET prev_hash = hash WHERE seq = 4"],
}


@pytest.fixture
def system(store: StoreConfig) -> Iterator[OncoLedger]:
    with OncoLedger(store) as system:
        for pid in ("P1", "P2"):
            system.register(pid, {"occurred": "2016-04-26", "sex": "male"}, actor="a", source="cli")
        for n in range(5):
            system.log_access("dr_a", channel="cli", resource="history", patient_id=f"P{n % 2 + 1}")
        yield system


@pytest.mark.parametrize("tamper", TAMPERS)
def test_the_shared_checker_gives_the_access_logs_own_verdict(
    system: OncoLedger, store: StoreConfig, tamper: str
) -> None:
    for sql in TAMPERS[tamper]:
        raw(store, sql)
    rows = raw(store, f"SELECT {', '.join(COLUMNS)}, hash FROM ol_access_log ORDER BY seq")
    records = [dict(zip((*COLUMNS, "hash"), row, strict=True)) for row in rows]
    own = system.verify_access_log()
    shared = verify_sequence(records, ACCESS_LOG_ROWS)
    assert (shared.ok, shared.entries, shared.head, shared.first_broken, shared.reason) == (
        own.ok,
        own.entries,
        own.head,
        own.first_broken_seq,
        own.reason,
    )
    assert (tamper in ("untouched", "latest removed")) == shared.ok
    for record in records:
        assert record_hash(record) == row_hash(record)


def test_the_shared_digests_are_the_ledgers_own(system: OncoLedger, store: StoreConfig) -> None:
    assert digest_heads(stored_heads(system.ledger.scan())) == system.ledger.digest()
    checker = ChainChecker()
    for patient_id, version, state in system.ledger.scan():
        checker.feed(patient_id, version, state)
    assert digest_heads(checker.verified_heads()).sha256 == system.digest().sha256
