"""The projector: keeps the stored views current off the request path.

A write is acknowledged once the ledger has stored it; the projector applies it to the views
afterwards, in batches, each batch committed together with the tracking position
(`Views.catch_up`). It runs as a thread inside `oncoledger serve` (woken by every save of that
process, and polling for saves of other processes), or on its own (`oncoledger projections
run`). Several projectors on one PostgreSQL database share the work safely: the tracking row is
taken with `FOR UPDATE SKIP LOCKED`, so one applies a batch while the others skip, never
applying an event twice and never waiting on each other.

On PostgreSQL one projector is active at a time: the one holding the session advisory lock
`LEADER_LOCK`; the others stand by, trying for the lock every `poll` seconds, and the first to
get it after the active one stops (or dies: a process killed with -9 ends its session, and the
lock with it) carries on from the tracking position. That is not what makes projection
exactly-once (the tracking row does, whoever applies); it spares the database's projectors each
other's work: two active ones took turns at the batches, and each then found most patients
moved on by the other and read them again from the stream (measured: the projectors' CPU per
event more than doubled, with two `serve` workers on a 2-core machine).
"""

from __future__ import annotations

import logging
import threading
import time

from domain.ledger.db import AdvisoryLock
from projections.views import Views

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
# After a round that applied events while this process saved more (an embedded projector under
# a write load), saves are let accumulate this long before the next round: the projector then
# applies batches of tens of events, not a round per save (its fixed cost per round: the head
# and position reads, a transaction, the tracking row), and leaves the GIL to the requests in
# between. A read waiting for the views (`wait_for`) cuts the pause short. Idle, a save is
# applied at once (the pause follows a round, never precedes one).
GATHER_SECONDS = 0.02
# Set (by `serve --no-projector`) for server processes that leave projecting to workers.
NO_PROJECTOR_ENV = "ONCOLEDGER_NO_PROJECTOR"
# The PostgreSQL advisory lock of the active projector (see the module's docstring).
LEADER_LOCK = 7316020
# How often the active projector makes sure its lock's connection is still there.
LEASE_CHECK_SECONDS = 5.0


class Projector:
    def __init__(
        self,
        views: Views,
        *,
        poll: float = POLL_SECONDS,
        gather: float = GATHER_SECONDS,
        exclusive: bool = True,
    ) -> None:
        self.views = views
        self.poll = poll
        self.gather = gather
        # On PostgreSQL, apply only while holding `LEADER_LOCK` (False: apply whenever asked, a
        # one-off `projections run --once`, say).
        db = getattr(views, "db", None)  # (a stand-in for the views in a test may have none)
        self.exclusive = exclusive and bool(getattr(db, "is_postgres", False))
        self._lock: AdvisoryLock | None = None
        if self.exclusive:
            self._lock = db.advisory_lock(LEADER_LOCK)  # type: ignore[union-attr]
        self._next_try = 0.0  # monotonic time of the next try for the lock (standing by)
        self._next_check = 0.0  # of the next look at the lock's connection (active)
        self._wake = threading.Event()
        self._hurry = threading.Event()  # someone waits for the views: no gathering pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0
        # The last round failed (a full disk under the views, say): reads that would show the
        # lag refuse instead of answering from views that are not moving.
        self.failing = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="oncoledger-projector", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask `run` to return after its current batch (safe from a signal handler)."""
        self._stop.set()
        self._hurry.set()
        self._wake.set()

    def stop(self) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._release()

    @property
    def active(self) -> bool:
        """Whether this projector applies events now (False: it stands by for another)."""
        return self._lock is None or self._lock.held

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()

    def _lead(self) -> bool:
        """Whether to apply now: always, unless `exclusive`; then while holding `LEADER_LOCK`,
        tried for at most every `poll` seconds while another projector holds it."""
        lock = self._lock
        if lock is None:
            return True
        now = time.monotonic()
        if lock.held:
            if now < self._next_check:
                return True
            self._next_check = now + LEASE_CHECK_SECONDS
            if lock.alive():
                return True
            log.warning("the projector lost its lock's connection; it stands by")
        if now < self._next_try:
            return False
        self._next_try = now + self.poll
        if not lock.try_acquire():
            return False
        self._next_check = now + LEASE_CHECK_SECONDS
        log.info("this projector is now the database's active one")
        return True

    def wake(self) -> None:
        """A save happened: apply it without waiting for the next poll."""
        self._wake.set()

    def run(self) -> None:
        """Catch up, then wait for a wake-up or the poll interval; until `stop`."""
        while not self._stop.is_set():
            self._wake.clear()
            self._hurry.clear()
            applied = self.step()
            if applied and self._wake.is_set() and self.gather > 0:
                # This process saved more while the round ran: it is under a write load.
                self._hurry.wait(self.gather)
            # While failing, back off (up to 5 s) rather than retry at full speed.
            self._wake.wait(max(self.poll, 5.0) if self.failing else self.poll)

    def step(self) -> int:
        """One round of catch-up; failures are logged and retried on the next round."""
        try:
            if not self._lead():
                self.failing = False
                return 0  # another projector is the active one
            applied = self.views.catch_up(skip_locked=True)
        except Exception:
            if not self.failing:  # once per failing streak, not at every retry
                log.exception("the projector could not apply events; it tries again")
            self.failing = True
            self._release()  # another projector may fare better meanwhile
            return 0
        if self.failing:
            log.warning("the projector applies events again")
        self.failing = False
        self.applied += applied
        return applied

    def wait_for(self, position: int, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until the views have applied `position`."""
        deadline = time.monotonic() + timeout
        while True:
            if self.views.position() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._hurry.set()
            self.wake()
            time.sleep(min(0.01, remaining))
