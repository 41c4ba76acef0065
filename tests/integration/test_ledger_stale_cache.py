"""The write side trusts its cached patient (no read of the store per append), and a stale cache
never gives a wrong answer, on SQLite and PostgreSQL.

Two `Ledger` instances on one store stand for two processes: the second writes behind the
first's back, so the first's cached patient is behind the store. Its next append is refused by
the store's (stream, version) key and run again on the stream reloaded; a refusal (a rule, an
If-Match, an event id) is only ever given from the stream as stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import Conflict, RuleViolation, StaleVersion
from domain.ledger.application import Ledger, StoreConfig

ACTOR = "test-writer"
P1 = "P1"


@pytest.fixture
def ledgers(store: StoreConfig) -> Iterator[tuple[Ledger, Ledger]]:
    first, second = Ledger(store), Ledger(store)
    first.register(P1, registration(), actor=ACTOR, source="api")
    second.load(P1)  # both have P1 cached, at version 1
    yield first, second
    first.close()
    second.close()


def registration() -> ev.AnyEvent:
    return decode_entry({"type": "patient_registered", "occurred": "2016-05-01", "sex": "male"})


def draw(n: int = 1, event_id: UUID | None = None, occurred: str = "2016-08-30") -> ev.AnyEvent:
    body: dict[str, Any] = {"type": "ctc_count", "occurred": occurred, "count": n}
    return decode_entry(body | ({"event_id": str(event_id)} if event_id else {}))


def death(occurred: str = "2017-01-01") -> ev.AnyEvent:
    return decode_entry({"type": "death", "occurred": occurred})


def correction(kind: str, target: UUID, **fields: Any) -> ev.AnyEvent:
    body = {"type": kind, "occurred": "2017-02-01", "target_event_id": str(target)}
    return decode_entry(body | {"reason": "entered in error"} | fields)


def send(ledger: Ledger, *entries: ev.AnyEvent, expected: int | None = None) -> list[Any]:
    return ledger.append(P1, list(entries), actor=ACTOR, source="api", expected_version=expected)


def test_an_append_on_a_current_cache_reads_nothing_from_the_store(
    ledgers: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = ledgers
    reads: list[Any] = []
    select = first.recorder.select_events
    monkeypatch.setattr(
        first.recorder, "select_events", lambda *a, **k: reads.append(a) or select(*a, **k)
    )
    for n in range(5):
        send(first, draw(n))
    assert reads == []
    # and a read still sees what any process stored since
    assert first.version(P1) == 6 and len(first.history(P1)) == 6


def test_a_write_behind_the_cache_is_not_lost(ledgers: tuple[Ledger, Ledger]) -> None:
    first, second = ledgers
    send(first, draw(1))
    (behind,) = send(second, draw(2))  # second's cache was at 1: refused by the key, reloaded
    (after,) = send(first, draw(3))  # first's cache is at 2, the store at 3
    assert (behind.version, after.version) == (3, 4)
    history = first.history(P1)
    assert [e.version for e in history] == [1, 2, 3, 4]
    assert [e.event_id for e in history[2:]] == [behind.event_id, after.event_id]
    assert first.verify(P1).ok


def test_if_match_is_judged_on_the_store_not_on_a_stale_cache(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    first, second = ledgers
    send(second, draw(1))  # the store at 2; first's cache still at 1
    # when first is asked to append at the version the store is at, then it does
    (receipt,) = send(first, draw(2), expected=2)
    assert receipt.version == 3
    # and one that expects the version its stale cache had is refused as stale
    with pytest.raises(StaleVersion):
        send(second, draw(3), expected=2)  # second's cache at 2, the store at 3
    with pytest.raises(StaleVersion):
        send(second, draw(3), expected=1)
    assert second.version(P1) == 3
    (receipt,) = send(second, draw(3), expected=3)
    assert receipt.version == 4


def test_a_retry_of_an_event_stored_behind_the_cache_is_answered_idempotently(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    first, second = ledgers
    event_id = uuid4()
    (original,) = send(first, draw(1, event_id))
    # when the same event is sent to second, whose cache does not have it
    (again,) = send(second, draw(1, event_id))
    # then it is the stored event's receipt, and nothing is stored twice
    assert not again.created
    assert (again.version, again.hash, again.recorded_at) == (
        original.version,
        original.hash,
        original.recorded_at,
    )
    # and with the same If-Match as the first time: the same answer
    (with_if_match,) = send(second, draw(1, event_id), expected=1)
    assert not with_if_match.created and with_if_match.version == 2
    assert second.version(P1) == 2
    # and the same id with another body is refused as a conflict
    with pytest.raises(Conflict) as info:
        send(first, draw(9, event_id))
    assert info.value.rule == "idempotent_event_id"


def test_an_event_id_another_stream_took_behind_the_cache_is_refused(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    first, second = ledgers
    taken = uuid4()
    second.register("P2", registration(), actor=ACTOR, source="api")
    second.append("P2", [draw(1, taken)], actor=ACTOR, source="api")
    with pytest.raises(Conflict) as info:
        send(first, draw(1, taken))
    assert info.value.rule == "unique_event_id"
    assert first.version(P1) == 1


def test_a_rule_is_judged_on_the_store_not_on_a_stale_cache(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    first, second = ledgers
    (died,) = send(first, death("2017-01-01"))
    second.load(P1)
    send(second, correction("event_retracted", died.event_id))
    # first's cache still has the death: an event after it is judged on the store, and stored
    (later,) = send(first, draw(1, occurred="2018-03-01"))
    assert later.version == 4
    # an amendment of an event first's cache has never seen is judged on the store too
    (unseen,) = send(second, draw(2))
    replacement = {"type": "ctc_count", "occurred": "2016-09-01", "count": 3}
    (amended,) = send(first, correction("event_amended", unseen.event_id, replacement=replacement))
    assert amended.version == 6
    # and a real refusal is still one
    send(second, death("2019-01-01"))
    with pytest.raises(RuleViolation) as info:
        send(first, draw(3, occurred="2020"))
    assert info.value.rule == "nothing_after_death"


def test_a_batch_accepted_by_a_stale_cache_and_refused_by_the_store_stores_nothing(
    ledgers: tuple[Ledger, Ledger],
) -> None:
    first, second = ledgers
    send(second, death("2017-01-01"))
    # first's stale cache would take both; the stream as stored refuses the second
    with pytest.raises(RuleViolation) as info:
        send(first, draw(1, occurred="2016-10-01"), draw(2, occurred="2018"))
    assert info.value.rule == "nothing_after_death"
    assert first.version(P1) == 2
    # and first's next append starts from the stream as stored, not the half-applied batch
    (receipt,) = send(first, draw(3, occurred="2016-11-01"))
    assert receipt.version == 3
    assert [e.version for e in first.history(P1)] == [1, 2, 3]
    assert first.verify(P1).ok
