"""Patients' keys read again in rounds, for appends on an event loop (`Ledger.append_async`).

A live key is trusted for `RECHECK` seconds after it was read (an erasure by another process
shows within that time). An append on the loop must not read the store itself: a key past a
quarter of that time is put down for the next round, which reads every key put down by then in
one query, in a thread of its own, `ROUND` seconds later; an append whose key is past its time
(less a margin) waits for the next round, which then starts at once. So a patient written to
steadily never waits, and a burst of patients not written to for a while waits for one query.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from domain.ledger.patient_keys import RECHECK, PatientKeys

# An append on the loop uses a cached key only while it has this long left to be trusted.
MARGIN = 0.1
ROUND = 0.1


class KeyRounds:
    """The rounds of one ledger's keys, on the event loop that asks (one at a time)."""

    def __init__(self, keys: PatientKeys) -> None:
        self.keys = keys
        self._due: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: asyncio.Future[None] | None = None  # the next round's end, if awaited
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self._thread: ThreadPoolExecutor | None = None
        self.rounds = 0

    def usable(self, patient_id: str) -> bool | None:
        """True: the key is live and may be used now (put down for the next round past a
        quarter of its time). False: it is past its time; `read_again` it. None: this process
        holds no live key for the patient (never read, or erased): `append` must decide."""
        age = self.keys.live_age(patient_id)
        if age is None:
            return None
        if age > RECHECK - MARGIN:
            return False
        if age > RECHECK / 4 and patient_id not in self._due:
            self._due.add(patient_id)
            self._schedule(soon=False)
        return True

    async def read_again(self, patient_id: str) -> None:
        """Wait until the patient's key was read again, by the next round (started now)."""
        self._due.add(patient_id)
        self._schedule(soon=True)
        assert self._next is not None
        await asyncio.shield(self._next)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown()

    def _schedule(self, *, soon: bool) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (a test's): nothing to come on the old one
            self._loop, self._next, self._timer, self._running = loop, None, None, False
        if soon and self._next is None:
            self._next = loop.create_future()
        if self._running:
            return  # its end schedules the next
        if self._timer is not None:
            if not soon:
                return
            self._timer.cancel()
        self._timer = loop.call_later(0 if soon else ROUND, self._round)

    def _round(self) -> None:
        self._timer, self._running = None, True
        due, self._due = list(self._due), set()
        ended, self._next = self._next, None
        if self._thread is None:  # not the handlers' threads: appends may fill those
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="oncoledger-keys")
        assert self._loop is not None
        read = self._loop.run_in_executor(
            self._thread, functools.partial(self.keys.preload, due, again=True)
        )
        read.add_done_callback(functools.partial(self._ended, ended))

    def _ended(self, ended: asyncio.Future[None] | None, read: asyncio.Future[None]) -> None:
        # A key that could not be read stays past its time: its append goes the thread's way.
        if not read.cancelled():
            read.exception()
        self.rounds += 1
        self._running = False
        if ended is not None and not ended.done():
            ended.set_result(None)
        if self._due:
            self._schedule(soon=self._next is not None)
