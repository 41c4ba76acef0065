"""The live feed: every stored event across all patients, in recording order, for followers.

It reads the event store's notification log itself, not the views, so a follower never waits
for a catch-up and sees exactly what is stored. An event's `position` is its notification id,
the same number the audit feed pages by (`GET /api/v1/audit?after=`). Positions only grow and
are committed in order on both stores (SQLite has one writer at a time; the library makes
PostgreSQL writers take the table's EXCLUSIVE lock), so reading "after P" never skips an event
that commits later with a smaller position.

Waiting for the next event (long poll, SSE, `oncoledger follow`) holds no database connection
and no lock: a write in this process wakes the waiters at once (`wake`, called by the ledger
after every save); writes by other processes are found by asking the store for its head every
`POLL_SECONDS`, one short query each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import Struct

from domain.errors import ValidationFailed
from domain.ledger.application import Ledger

MAX_LIMIT = 1000
MAX_WAIT_SECONDS = 60
# How often a waiter asks the store whether another process has written (one MAX() query).
POLL_SECONDS = 0.5
_LAST = 2**63 - 1


class FeedPage(Struct, frozen=True, kw_only=True):
    """Stored events after a position; `next_after` is the `after` of the next request."""

    events: list[dict[str, Any]]
    # The position of the last event of this page, or the `after` asked for when it is empty.
    next_after: int


class Feed:
    """Pages of stored events in recording order, and waiting for the next one."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._changed = threading.Condition()
        self._generation = 0
        self._guard = threading.Lock()
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def head(self) -> int:
        """The position of the latest stored event (0 when the ledger is empty)."""
        return int(self.ledger.recorder.max_notification_id() or 0)

    def page(self, after: int = 0, limit: int = 100) -> FeedPage:
        """Up to `limit` stored events with a position greater than `after`, oldest first.

        An `after` beyond the head is refused: no position this ledger handed out is there, so
        the follower holds a position of another (or a restored) ledger and would wait forever.
        """
        check_after(after)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(f"`limit` must be 1 to {MAX_LIMIT}", field="limit", rule="range")
        # The largest position a store can hold is 2^63-1: nothing can come after it.
        notifications = (
            self.ledger.recorder.select_notifications(after + 1, limit) if after < _LAST else []
        )
        if not notifications:
            head = self.head()
            if after > head:
                raise ValidationFailed(
                    f"`after` {after} is beyond the ledger's latest position {head}: use a "
                    "position this ledger handed out (0 to start from the first event)",
                    field="after",
                    rule="beyond_head",
                )
            return FeedPage(events=[], next_after=after)
        events = [self._event(n) for n in notifications]
        return FeedPage(events=events, next_after=notifications[-1].id)

    def _event(self, notification: Any) -> dict[str, Any]:
        """The event's flat JSON form, as history shows it, with its `position` first."""
        base: dict[str, Any] = {"position": notification.id}
        if self.ledger.is_erased(str(notification.originator_id)):
            # Erased: the feed carries only that it was, never content.
            return {
                **base,
                "patient_id": str(notification.originator_id),
                "version": notification.originator_version,
                "erased": True,
            }
        try:
            data = msgspec.json.decode(self.ledger.plaintext(notification))
        except Exception:  # a payload that no longer decrypts or parses: say so, don't fail
            data = None
        if not isinstance(data, dict):
            return {
                **base,
                "patient_id": str(notification.originator_id),
                "version": notification.originator_version,
                "unreadable": True,
            }
        data.setdefault("patient_id", str(notification.originator_id))
        return {**base, **data}

    # -- waiting ---------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was stored by this process: wake every waiter now (any thread)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
        with self._guard:
            waiters = list(self._async_waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def wait(self, after: int, timeout: float, until: Callable[[], bool] | None = None) -> bool:
        """Block this thread until an event after `after` is stored, or `timeout` seconds pass,
        or `until()` is true (looked at every `POLL_SECONDS`).

        True when there is one. For synchronous followers (the CLI)."""
        deadline = time.monotonic() + timeout
        while until is None or not until():
            with self._changed:
                generation = self._generation
            if self.head() > after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(min(remaining, POLL_SECONDS))
        return False

    async def wait_async(self, after: int, timeout: float) -> bool:
        """The same for a coroutine: the event loop is never blocked, no connection is held
        while waiting (the head is read in a worker thread, a short query each time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event = asyncio.Event()
        waiter = (loop, event)
        with self._guard:
            self._async_waiters.add(waiter)
        try:
            while True:
                event.clear()  # before reading the head: a wake after the read is not lost
                if await asyncio.to_thread(self.head) > after:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, POLL_SECONDS))
        finally:
            with self._guard:
                self._async_waiters.discard(waiter)


def check_after(after: int) -> None:
    if after < 0:
        raise ValidationFailed("`after` must be 0 or more", field="after", rule="range")


def check_wait(seconds: float) -> None:
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise ValidationFailed(
            f"`wait` must be 0 to {MAX_WAIT_SECONDS} seconds", field="wait", rule="range"
        )


__all__ = ["MAX_LIMIT", "MAX_WAIT_SECONDS", "Feed", "FeedPage", "check_after", "check_wait"]
