"""Group commit: appends that wait at the same moment share one transaction, one fsync.

Leader and followers, no timer. An append that finds nobody committing commits at once, alone
(a lone writer waits for nothing). Appends that arrive while a commit is under way queue; when
it ends, the first of them leads the next commit, which takes every append queued by then,
across patients, into one `insert_events` call (the recorders store several streams, and their
event ids, in one transaction). Each append returns only when the commit that holds its events
has returned.

A batch whose transaction is refused is not the answer for all of its appends: one append's
event id taken by another stream, or versions another process took, would fail its neighbours.
Then each append of the batch is committed on its own, and gets its own outcome (the caller's
retry logic runs per append). A storage fault (a full disk, a lost store) is not retried that
way: every append of the batch gets it, and each asks the store whether its own events were
stored (`domain.ledger.writing.settled`): a commit can fail after the database made it durable.

An append from an event loop (`submit`) does not block a thread of its own: it is queued with
an asyncio future, and when it is its turn to lead, the committer thread (one per
`GroupCommit`, started on the first such append) leads that commit. The futures of a batch are
resolved by one callback on their loop, so a batch costs the loop one wake-up, not one per
append.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent

# The recorder's insert: the stored events and the keyword arguments for them, each a list
# (one item per event) that is concatenated when appends are committed together.
Insert = Callable[[list[StoredEvent], dict[str, list[Any]]], Sequence[int] | None]


@dataclass(eq=False)
class _Append:
    stored: list[StoredEvent]
    kwargs: dict[str, list[Any]]
    # A thread's append waits on `wake`; an append from an event loop (`submit`) has a
    # `future`, resolved there, and is never waited on here.
    wake: threading.Event | None = None
    future: asyncio.Future[Sequence[int] | None] | None = None
    done: bool = False
    ids: Sequence[int] | None = None
    error: BaseException | None = None


class GroupCommit:
    """Commits the appends of concurrent threads of one process together."""

    def __init__(self, insert: Insert, is_fault: Callable[[BaseException], bool]) -> None:
        self._insert = insert
        self._is_fault = is_fault
        self._mutex = threading.Lock()
        self._queue: list[_Append] = []
        self._leading = False
        # The committer thread leads a commit whose first append came from an event loop.
        self._committer: threading.Thread | None = None
        self._turn = threading.Event()
        self._committer_leads = False
        self._closed = False
        # What the commits were: how many transactions were tried (one per batch, plus one per
        # append when a batch fell back to one by one) and the largest batch committed at once.
        self.transactions = 0
        self.largest = 0
        # How many appends came from an event loop (`submit`).
        self.submitted = 0

    def commit(
        self, stored: list[StoredEvent], kwargs: dict[str, list[Any]]
    ) -> Sequence[int] | None:
        """Store `stored` durably (with others waiting now); the notification ids, if any."""
        wake = threading.Event()
        append = _Append(stored, kwargs, wake=wake)
        with self._mutex:
            self._queue.append(append)
            lead = not self._leading
            self._leading = True
        if not lead:
            wake.wait()  # until the commit that holds it is done, or it is to lead
        if not append.done:
            self._lead()
        if append.error is not None:
            raise append.error
        return append.ids

    def submit(
        self, stored: list[StoredEvent], kwargs: dict[str, list[Any]]
    ) -> asyncio.Future[Sequence[int] | None]:
        """`commit`, for a caller on an event loop: queued at once, committed in the committer
        thread with the others waiting then; the future has the notification ids, or the
        error. Call it on the loop."""
        future: asyncio.Future[Sequence[int] | None] = asyncio.get_running_loop().create_future()
        append = _Append(stored, kwargs, future=future)
        with self._mutex:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            self._queue.append(append)
            self.submitted += 1
            lead = not self._leading
            self._leading = True
            self._committer_leads = self._committer_leads or lead
            if self._committer is None:
                self._committer = threading.Thread(
                    target=self._commit_turns, name="oncoledger-committer", daemon=True
                )
                self._committer.start()
        if lead:
            self._turn.set()
        return future

    def close(self) -> None:
        """Stop the committer thread once the commits queued now are done."""
        with self._mutex:
            self._closed = True
            committer = self._committer
        self._turn.set()
        if committer is not None:
            committer.join(timeout=30)

    def _commit_turns(self) -> None:
        while True:
            self._turn.wait()
            self._turn.clear()
            with self._mutex:
                lead, self._committer_leads = self._committer_leads, False
                finished = self._closed and not self._leading
            if lead:
                self._lead()
            elif finished:
                return

    def waiting(self) -> int:
        """How many appends are queued for the next commit (for tests and diagnostics)."""
        with self._mutex:
            return len(self._queue)

    def _lead(self) -> None:
        with self._mutex:
            batch, self._queue = self._queue, []
        try:
            self._run(batch)
        finally:
            for append in batch:
                if not append.done:  # the leader was interrupted (not an Exception)
                    append.error = append.error or RuntimeError("the commit was interrupted")
                    append.done = True
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
                if successor is not None and successor.future is not None:
                    self._committer_leads = True
                turn = self._committer is not None and (self._committer_leads or self._closed)
            _wake(batch)
            if successor is not None and successor.wake is not None:
                successor.wake.set()  # not done: it leads the next commit
            if turn:
                self._turn.set()  # the committer leads the next commit (or may now stop)

    def _run(self, batch: list[_Append]) -> None:
        if len(batch) == 1:
            self._alone(batch[0])
            return
        stored = [event for append in batch for event in append.stored]
        kwargs: dict[str, list[Any]] = {}
        for append in batch:
            for name, items in append.kwargs.items():
                kwargs.setdefault(name, []).extend(items)
        self.transactions += 1
        try:
            ids = self._insert(stored, kwargs)
        except Exception as exc:
            if self._is_fault(exc):
                for append in batch:  # each asks the store whether its events were stored
                    append.error, append.done = exc, True
                return
            for append in batch:  # only the guilty one fails
                self._alone(append)
            return
        self.largest = max(self.largest, len(batch))
        start = 0
        for append in batch:
            end = start + len(append.stored)
            append.ids = list(ids[start:end]) if ids else None
            append.done, start = True, end

    def _alone(self, append: _Append) -> None:
        self.transactions += 1
        try:
            append.ids = self._insert(append.stored, append.kwargs)
            self.largest = max(self.largest, 1)
        except Exception as exc:
            append.error = exc
        append.done = True


def _wake(batch: list[_Append]) -> None:
    """Each append of a committed batch learns its outcome: a waiting thread is woken, the
    futures of each event loop are resolved by one callback there."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Append]] = {}
    for append in batch:
        if append.wake is not None:
            append.wake.set()
        elif append.future is not None:
            by_loop.setdefault(append.future.get_loop(), []).append(append)
    for loop, appends in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(_resolve, appends)


def _resolve(appends: list[_Append]) -> None:
    for append in appends:
        future = append.future
        if future is None or future.done():  # cancelled: nobody waits for the answer
            continue
        if append.error is not None:
            future.set_exception(append.error)
        else:
            future.set_result(append.ids)
