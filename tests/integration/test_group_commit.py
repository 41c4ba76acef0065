"""Group commit (domain/ledger/group_commit.py), on SQLite and PostgreSQL: appends of several
patients waiting at the same moment are stored by one transaction; a refusal is one append's
alone.

Deterministic, not timed: the first commit is held inside the recorder's insert until the other
appends are seen queued behind it; then it is let go, and the next commit takes them all.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import OperationalError, StoredEvent

from domain import events as ev
from domain.codec import decode_entry
from domain.errors import Conflict, RuleViolation, StorageFull
from domain.ledger.application import Ledger, Receipt, StoreConfig

ACTOR = "test-writer"


@pytest.fixture
def ledger(store: StoreConfig) -> Iterator[Ledger]:
    led = Ledger(store)
    yield led
    led.close()


def draw(n: int = 1, event_id: UUID | None = None, occurred: str = "2016-08-30") -> ev.AnyEvent:
    body: dict[str, Any] = {"type": "ctc_count", "occurred": occurred, "count": n}
    return decode_entry(body | ({"event_id": str(event_id)} if event_id else {}))


def registration() -> ev.AnyEvent:
    return decode_entry({"type": "patient_registered", "occurred": "2016-05-01", "sex": "male"})


def patients(ledger: Ledger, count: int) -> list[str]:
    """`count` registered patients whose appends never queue on one another's lock."""
    chosen: list[str] = []
    locks: set[int] = set()
    n = 0
    while len(chosen) < count:
        patient_id, n = f"G{n}", n + 1
        if id(ledger._streams.lock(patient_id)) not in locks:
            locks.add(id(ledger._streams.lock(patient_id)))
            chosen.append(patient_id)
            ledger.register(patient_id, registration(), actor=ACTOR, source="api")
    return chosen


class HeldCommits:
    """The recorder's insert, recorded; the first call after `hold()` waits for `release()`."""

    def __init__(self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ledger = ledger
        self.calls: list[list[StoredEvent]] = []
        self.fail_next: Exception | None = None
        self.commit_first = False
        self._entered, self._release = threading.Event(), threading.Event()
        self._held = False
        insert = ledger.recorder.insert_events

        def held(stored: list[StoredEvent], **kwargs: Any) -> Any:
            self.calls.append(list(stored))
            if self._held:
                self._held = False
                self._entered.set()
                assert self._release.wait(60)
            if self.fail_next is not None and len(stored) > 1:
                error, self.fail_next = self.fail_next, None
                if self.commit_first:
                    insert(stored, **kwargs)
                raise error
            return insert(stored, **kwargs)

        monkeypatch.setattr(ledger.recorder, "insert_events", held)

    def hold(self, work: Callable[[], Any]) -> Outcomes:
        """Start `work` on a thread and wait until its commit is held in the recorder."""
        self._held = True
        self._entered.clear()
        self._release.clear()
        outcomes = Outcomes()
        outcomes.start(work)
        assert self._entered.wait(60)
        return outcomes

    def queue(self, outcomes: Outcomes, work: Callable[[], Any]) -> None:
        """Start `work` on a thread and wait until its append is queued behind the held one."""
        before = self.ledger.group_commit.waiting()
        outcomes.start(work)
        wait_until(lambda: self.ledger.group_commit.waiting() == before + 1)

    def release(self) -> None:
        self._release.set()


class Outcomes:
    def __init__(self) -> None:
        self.results: list[Any] = []
        self.threads: list[threading.Thread] = []

    def start(self, work: Callable[[], Any]) -> None:
        index = len(self.results)
        self.results.append(None)

        def run() -> None:
            try:
                self.results[index] = work()
            except Exception as exc:
                self.results[index] = exc

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()

    def join(self) -> list[Any]:
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive(), "an append hung"
        return self.results


def wait_until(condition: Callable[[], bool]) -> None:
    """Until `condition` holds (a condition, not a duration, is what the test waits for)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.002)


def append(ledger: Ledger, patient_id: str, entry: ev.AnyEvent) -> Callable[[], Receipt]:
    return lambda: ledger.append(patient_id, [entry], actor=ACTOR, source="api")[0]


def test_appends_of_several_patients_waiting_together_share_one_commit(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *others = patients(ledger, 6)
    commits = HeldCommits(ledger, monkeypatch)
    # given a commit under way (held in the recorder)
    outcomes = commits.hold(append(ledger, first, draw(0)))
    # when five appends of five other patients arrive meanwhile, then they wait for it
    for n, patient_id in enumerate(others, start=1):
        commits.queue(outcomes, append(ledger, patient_id, draw(n)))
    commits.release()
    receipts = outcomes.join()
    # then all six are stored, the five by one transaction
    assert all(isinstance(r, Receipt) and r.created for r in receipts), receipts
    assert [len(call) for call in commits.calls] == [1, 5]
    assert {str(e.originator_id) for e in commits.calls[1]} == set(others)
    # and each stream is whole, its receipt naming what is stored
    for patient_id, receipt in zip([first, *others], receipts, strict=True):
        history = ledger.history(patient_id)
        assert [e.version for e in history] == [1, 2]
        assert (history[1].event_id, history[1].hash) == (receipt.event_id, receipt.hash)
        assert ledger.verify(patient_id).ok
    assert ledger.group_commit.largest == 5


def test_a_lone_writer_commits_at_once(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    (patient_id,) = patients(ledger, 1)
    commits = HeldCommits(ledger, monkeypatch)
    for n in range(3):
        ledger.append(patient_id, [draw(n)], actor=ACTOR, source="api")
    assert [len(call) for call in commits.calls] == [1, 1, 1]


def test_a_rule_violation_refuses_that_append_alone(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, dead, *others = patients(ledger, 5)
    ledger.append(
        dead, [decode_entry({"type": "death", "occurred": "2017-01-01"})], actor=ACTOR, source="api"
    )
    commits = HeldCommits(ledger, monkeypatch)
    outcomes = commits.hold(append(ledger, first, draw(0)))
    for patient_id in others:
        commits.queue(outcomes, append(ledger, patient_id, draw(1)))
    # when an append that breaks a rule arrives while the others wait, then it is refused at
    # once, before it joins them
    with pytest.raises(RuleViolation) as info:
        append(ledger, dead, draw(2, occurred="2018"))()
    assert info.value.rule == "nothing_after_death"
    commits.release()
    # and its neighbours are stored, together
    assert all(isinstance(r, Receipt) for r in outcomes.join())
    assert [len(call) for call in commits.calls] == [1, 3]
    assert ledger.version(dead) == 2


def test_a_duplicate_event_id_across_patients_in_one_batch_refuses_only_that_one(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, owner, thief, bystander = patients(ledger, 4)
    shared = uuid4()
    commits = HeldCommits(ledger, monkeypatch)
    outcomes = commits.hold(append(ledger, first, draw(0)))
    # when two patients' appends reuse one event id, in one batch with a third
    commits.queue(outcomes, append(ledger, owner, draw(1, shared)))
    commits.queue(outcomes, append(ledger, thief, draw(2, shared)))
    commits.queue(outcomes, append(ledger, bystander, draw(3)))
    commits.release()
    _, kept, refused, other = outcomes.join()
    # then the batch's transaction is refused, and each append is committed on its own: the
    # first to hold the id keeps it, the other is told, the bystander is stored
    assert [len(call) for call in commits.calls] == [1, 3, 1, 1, 1]
    assert isinstance(kept, Receipt) and kept.event_id == shared
    assert isinstance(refused, Conflict) and refused.rule == "unique_event_id"
    assert isinstance(other, Receipt) and other.created
    assert ledger.version(owner) == 2 and ledger.version(thief) == 1
    assert ledger.version(bystander) == 2
    # and the refused patient's next append is stored as usual
    (receipt,) = ledger.append(thief, [draw(4)], actor=ACTOR, source="api")
    assert receipt.version == 2


def _full(store: StoreConfig) -> Exception:
    if store.is_postgres:
        import psycopg

        driver: Exception = psycopg.errors.DiskFull("could not extend file: No space left")
    else:
        driver = sqlite3.OperationalError("database or disk is full")
    wrapped = OperationalError(str(driver))
    wrapped.__cause__ = driver
    return wrapped


@pytest.mark.parametrize("committed", [False, True])
def test_a_storage_fault_of_a_batch_is_answered_per_append_from_the_store(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, store: StoreConfig, committed: bool
) -> None:
    first, *others = patients(ledger, 4)
    commits = HeldCommits(ledger, monkeypatch)
    commits.fail_next, commits.commit_first = _full(store), committed
    outcomes = commits.hold(append(ledger, first, draw(0)))
    for patient_id in others:
        commits.queue(outcomes, append(ledger, patient_id, draw(1)))
    commits.release()
    results = outcomes.join()[1:]
    # when the batch's commit fails on a full disk, then it is not run again one by one: each
    # append asks the store whether its events were stored, and answers so
    assert [len(call) for call in commits.calls] == [1, 3]
    if committed:
        assert all(isinstance(r, Receipt) and r.created for r in results), results
        assert all(ledger.version(p) == 2 for p in others)
    else:
        assert all(isinstance(r, StorageFull) for r in results), results
        assert all("nothing was stored" in str(r) for r in results)
        assert all(ledger.version(p) == 1 for p in others)
