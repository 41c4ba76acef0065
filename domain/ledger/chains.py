"""The stored bytes of the chains, for verification and the digest (SPEC §6)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from eventsourcing.persistence import StoredEvent

from domain.errors import Gone
from domain.integrity import ERASED, UNDECRYPTABLE, Digest, digest_heads, stored_heads
from domain.ledger.patient_keys import envelope_of

Plaintext = Callable[[StoredEvent], bytes]
Scanned = tuple[str, int, bytes | dict[str, object]]


def scan(recorder: Any, plaintext: Plaintext, patient_id: str | None = None) -> Iterator[Scanned]:
    """Stored events as (patient_id, version, plaintext JSON), in recording order."""
    if patient_id is not None:
        for stored in recorder.select_events(patient_id):
            yield patient_id, stored.originator_version, plaintext_or_empty(plaintext, stored)
        return
    start = 1
    while True:
        batch = recorder.select_notifications(start, 1000)
        if not batch:
            return
        for n in batch:
            yield str(n.originator_id), n.originator_version, plaintext_or_empty(plaintext, n)
        start = batch[-1].id + 1


def plaintext_or_empty(plaintext: Plaintext, stored: StoredEvent) -> bytes | dict[str, object]:
    try:
        return plaintext(stored)
    except Gone:
        # An erased patient: only the clear envelope remains, and the chain is checked
        # from its stored hashes.
        return {**envelope_of(bytes(stored.state)), ERASED: True}
    except Exception:  # a tampered ciphertext or another key: the checker reports it
        return UNDECRYPTABLE


def digest(scanned: Iterable[Scanned]) -> Digest:
    """One SHA-256 over every stream head, in patient-id order."""
    return digest_heads(stored_heads(scanned))
