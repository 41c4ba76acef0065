"""`Ledger.append_async` (the REST API's append), on SQLite and PostgreSQL: the same semantics
as `append` while its rules run on an event loop and its commit in the group committer.

Deterministic, not timed: a commit is held inside the recorder's insert until the appends to
be batched with it are seen queued behind it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import Conflict, Gone, RuleViolation
from domain.ledger.application import Ledger, Receipt, StoreConfig

ACTOR = "test-writer"


@pytest.fixture(params=["clear", "encrypted"])
def ledger(store: StoreConfig, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "encrypted":
        store = replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode())
    led = Ledger(store)
    yield led
    led.close()


def draw(n: int = 1, event_id: UUID | None = None, occurred: str = "2016-08-30") -> ev.AnyEvent:
    body: dict[str, Any] = {"type": "ctc_count", "occurred": occurred, "count": n}
    return decode_entry(body | ({"event_id": str(event_id)} if event_id else {}))


def registered(ledger: Ledger, count: int) -> list[str]:
    """`count` registered patients (so cached by this process) on locks of their own."""
    chosen: list[str] = []
    locks: set[int] = set()
    n = 0
    while len(chosen) < count:
        patient_id, n = f"A{n}", n + 1
        if id(ledger._streams.lock(patient_id)) not in locks:
            locks.add(id(ledger._streams.lock(patient_id)))
            chosen.append(patient_id)
            body = {"type": "patient_registered", "occurred": "2016-05-01", "sex": "female"}
            ledger.register(patient_id, decode_entry(body), actor=ACTOR, source="api")
    return chosen


async def append_async(ledger: Ledger, patient_id: str, entry: ev.AnyEvent) -> Receipt:
    (receipt,) = await ledger.append_async(patient_id, [entry], actor=ACTOR, source="api")
    return receipt


def test_async_and_thread_appends_to_one_patient_keep_its_versions_contiguous(
    ledger: Ledger,
) -> None:
    (patient_id,) = registered(ledger, 1)
    from_thread: list[Receipt] = []

    def writer() -> None:
        for n in range(15):
            from_thread.extend(ledger.append(patient_id, [draw(n)], actor=ACTOR, source="cli"))

    async def main() -> list[Receipt]:
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            return await asyncio.gather(
                *(append_async(ledger, patient_id, draw(100 + n)) for n in range(15))
            )
        finally:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    # when an event loop and a thread append to one patient at once
    from_loop = asyncio.run(main())
    # then every append is stored once, the stream's versions contiguous, the chain whole
    history = ledger.history(patient_id)
    assert [e.version for e in history] == list(range(1, 32))
    receipts = from_loop + from_thread
    assert sorted(r.version for r in receipts) == list(range(2, 32))
    stored = {e.event_id: (e.version, e.hash) for e in history}
    assert all(stored[r.event_id] == (r.version, r.hash) for r in receipts)
    assert ledger.verify(patient_id).ok
    # and a reload from the store (another process, say) reads the same stream
    fresh = Ledger(ledger.config)
    try:
        assert fresh.history(patient_id) == history
    finally:
        fresh.close()


def test_async_appends_of_several_patients_share_one_commit(ledger: Ledger) -> None:
    first, *others = registered(ledger, 4)
    held = HeldInsert(ledger)

    async def main() -> list[Receipt | BaseException]:
        # given a commit under way (a thread's, held in the recorder)
        blocked = asyncio.get_running_loop().run_in_executor(
            None, lambda: ledger.append(first, [draw(0)], actor=ACTOR, source="cli")
        )
        await held.entered()
        # when three appends from the event loop arrive meanwhile
        tasks = [asyncio.ensure_future(append_async(ledger, p, draw(1))) for p in others]
        await until(lambda: ledger.group_commit.waiting() == 3)
        held.release()
        await blocked
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    # then they are stored by one transaction, after the one they waited for
    assert all(isinstance(r, Receipt) and r.created for r in results), results
    assert [len(call) for call in held.calls] == [1, 3]
    assert ledger.group_commit.submitted == 3
    assert all(ledger.version(p) == 2 and ledger.verify(p).ok for p in others)


def test_a_refused_async_append_is_refused_alone(ledger: Ledger) -> None:
    first, owner, thief, bystander, dead = registered(ledger, 5)
    death = decode_entry({"type": "death", "occurred": "2017-01-01"})
    ledger.append(dead, [death], actor=ACTOR, source="api")
    shared = uuid4()
    held = HeldInsert(ledger)

    async def main() -> tuple[list[Receipt | BaseException], BaseException]:
        blocked = asyncio.get_running_loop().run_in_executor(
            None, lambda: ledger.append(first, [draw(0)], actor=ACTOR, source="cli")
        )
        await held.entered()
        # when, in one batch, two patients' appends reuse one event id beside a third
        tasks = [
            asyncio.ensure_future(append_async(ledger, owner, draw(1, shared))),
            asyncio.ensure_future(append_async(ledger, thief, draw(2, shared))),
            asyncio.ensure_future(append_async(ledger, bystander, draw(3))),
        ]
        await until(lambda: ledger.group_commit.waiting() == 3)
        # and an append that breaks a rule arrives meanwhile: it is refused at once
        with pytest.raises(RuleViolation) as info:
            await append_async(ledger, dead, draw(4, occurred="2018"))
        held.release()
        await blocked
        return await asyncio.gather(*tasks, return_exceptions=True), info.value

    (kept, refused, other), violation = asyncio.run(main())
    assert isinstance(violation, RuleViolation) and violation.rule == "nothing_after_death"
    # then only the one that reused the id is refused; its neighbours are stored
    assert isinstance(kept, Receipt) and kept.event_id == shared
    assert isinstance(refused, Conflict) and refused.rule == "unique_event_id"
    assert isinstance(other, Receipt) and other.created
    assert [ledger.version(p) for p in (owner, thief, bystander, dead)] == [2, 1, 2, 2]
    # and the refused patient's next append, from the loop, is stored as usual
    assert asyncio.run(append_async(ledger, thief, draw(5))).version == 2


def test_an_async_retry_answers_as_the_first_time(ledger: Ledger) -> None:
    (patient_id,) = registered(ledger, 1)
    entry = draw(3, uuid4())
    first = asyncio.run(append_async(ledger, patient_id, entry))
    again = asyncio.run(append_async(ledger, patient_id, entry))
    assert first.created and not again.created
    assert (again.event_id, again.version, again.hash) == (first.event_id, 2, first.hash)
    assert ledger.version(patient_id) == 2


def test_an_async_append_to_an_erased_patient_is_refused(ledger: Ledger) -> None:
    if ledger.keys is None:
        pytest.skip("erasure needs the master key")
    (patient_id,) = registered(ledger, 1)
    asyncio.run(append_async(ledger, patient_id, draw(1)))
    ledger.erase(patient_id, actor=ACTOR, reason="the patient asked")
    with pytest.raises(Gone):
        asyncio.run(append_async(ledger, patient_id, draw(2)))


def test_a_cancelled_async_append_still_ends_its_command(ledger: Ledger) -> None:
    (patient_id,) = registered(ledger, 1)
    held = HeldInsert(ledger)

    async def main() -> Receipt:
        # given an append from the loop whose commit is under way (held in the recorder)
        caller = asyncio.ensure_future(append_async(ledger, patient_id, draw(1)))
        await held.entered()
        # when its caller goes away (a cancelled request)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        held.release()
        # then its command still ends: the commit lands, the patient's lock is free again
        return await append_async(ledger, patient_id, draw(2))

    receipt = asyncio.run(main())
    assert receipt.version == 3
    assert [e.version for e in ledger.history(patient_id)] == [1, 2, 3]
    assert ledger.verify(patient_id).ok


class HeldInsert:
    """The recorder's insert, recorded; the first call waits until `release()`."""

    def __init__(self, ledger: Ledger) -> None:
        self.calls: list[list[StoredEvent]] = []
        self._entered, self._release = threading.Event(), threading.Event()
        self._held = True
        insert = ledger.recorder.insert_events

        def held(stored: list[StoredEvent], **kwargs: Any) -> Any:
            self.calls.append(list(stored))
            if self._held:
                self._held = False
                self._entered.set()
                assert self._release.wait(60)
            return insert(stored, **kwargs)

        ledger.recorder.insert_events = held  # type: ignore[method-assign]

    async def entered(self) -> None:
        await until(self._entered.is_set)

    def release(self) -> None:
        self._release.set()


async def until(condition: Any) -> None:
    """Until `condition()` holds (a condition, not a duration, is what the test waits for)."""
    for _ in range(60_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def test_an_erasure_by_another_process_refuses_an_async_append_once_the_key_is_due(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ledger.keys is None:
        pytest.skip("erasure needs the master key")
    (patient_id,) = registered(ledger, 1)
    asyncio.run(append_async(ledger, patient_id, draw(1)))  # the key is known here now
    other = Ledger(ledger.config)  # another process
    try:
        other.erase(patient_id, actor=ACTOR, reason="the patient asked")
    finally:
        other.close()
    # when the key this process holds is past the time it is trusted without asking
    import domain.ledger.patient_keys as patient_keys

    later = patient_keys.time.monotonic() + patient_keys.RECHECK
    monkeypatch.setattr(patient_keys.time, "monotonic", lambda: later)
    # then an append from the loop reads it again first, and is refused
    with pytest.raises(Gone):
        asyncio.run(append_async(ledger, patient_id, draw(2)))
    assert ledger.version(patient_id) == 2


# Run in a child process: a deadlock there is killed at the timeout and fails the test, where
# in this process its parked threads would hang the run.
BURST = """
import asyncio, sys
from concurrent.futures import ThreadPoolExecutor
from domain.codec import decode_entry
from domain.errors import RuleViolation
from domain.ledger.application import Ledger, StoreConfig

patient_id, first = sys.argv[1], sys.argv[2]
ledger = Ledger(StoreConfig.from_env())
ledger.register(
    patient_id,
    decode_entry({"type": "patient_registered", "occurred": "2016-05-01", "sex": "male"}),
    actor="burst",
    source="api",
)
if first == "not-cached":
    ledger._streams.take(patient_id)  # the rest of the first append reads the store

def draw(n, occurred="2016-08-30"):
    return decode_entry({"type": "ctc_count", "occurred": occurred, "count": n})

async def main():
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(4))  # smaller than the burst
    # A refusal on a cached patient is judged again on the stream as stored, in a thread.
    head = draw(0, "2999-01-01") if first == "refused" else draw(0)
    on_loop = [
        asyncio.ensure_future(ledger.append_async(p, [e], actor="burst", source="api"))
        for p, e in [(patient_id, head)] + [(patient_id, draw(n)) for n in range(1, 40)]
    ]
    await asyncio.sleep(0)  # the first holds the patient's lock; the others wait for it
    in_pool = [loop.run_in_executor(None, lambda n=n: ledger.append(
        patient_id, [draw(100 + n)], actor="burst", source="api")) for n in range(8)]
    return await asyncio.gather(*on_loop, *in_pool, return_exceptions=True)

outcomes = asyncio.run(main())
refused = [o for o in outcomes if isinstance(o, BaseException)]
assert all(isinstance(o, RuleViolation) for o in refused), refused
versions = [e.version for e in ledger.history(patient_id)]
assert versions == list(range(1, len(outcomes) - len(refused) + 2)), versions
assert ledger.verify(patient_id).ok
print("stored", len(versions) - 1, "refused", len(refused))
"""


@pytest.mark.parametrize("first", ["not-cached", "refused"])
def test_a_burst_to_one_patient_parks_no_thread_its_holder_needs(
    ledger: Ledger, first: str
) -> None:
    """40 appends on the loop and 8 from the handlers' pool to one patient, the pool smaller
    than the burst: every one is answered and the stream stays whole. (The rest of the lock
    holder's append once queued behind pool threads parked on that very lock: 17 such appends
    stopped the whole API.)"""
    config = ledger.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")} | {
        "ONCOLEDGER_DB": config.sqlite_path or "",
        "ONCOLEDGER_DATABASE_URL": config.database_url or "",
        "ONCOLEDGER_DATABASE_SCHEMA": config.schema or "",
        "ONCOLEDGER_CIPHER_KEY": config.cipher_key or "",
    }
    patient_id = f"BURST-{uuid4().hex[:8]}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", BURST, patient_id, first],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("appends to one patient still waited after 180 s: a deadlock")
    assert done.returncode == 0, done.stderr[-3000:]
    refused = "1" if first == "refused" else "0"
    assert done.stdout.split() == ["stored", str(48 - int(refused)), "refused", refused]
