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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent

# The recorder's insert: the stored events and the keyword arguments for them, each a list
# (one item per event) that is concatenated when appends are committed together.
Insert = Callable[[list[StoredEvent], dict[str, list[Any]]], Sequence[int] | None]


@dataclass(eq=False)
class _Append:
    stored: list[StoredEvent]
    kwargs: dict[str, list[Any]]
    wake: threading.Event = field(default_factory=threading.Event)
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
        # What the commits were: how many transactions were tried (one per batch, plus one per
        # append when a batch fell back to one by one) and the largest batch committed at once.
        self.transactions = 0
        self.largest = 0

    def commit(
        self, stored: list[StoredEvent], kwargs: dict[str, list[Any]]
    ) -> Sequence[int] | None:
        """Store `stored` durably (with others waiting now); the notification ids, if any."""
        append = _Append(stored, kwargs)
        with self._mutex:
            self._queue.append(append)
            lead = not self._leading
            self._leading = True
        if not lead:
            append.wake.wait()  # until the commit that holds it is done, or it is to lead
        if not append.done:
            self._lead()
        if append.error is not None:
            raise append.error
        return append.ids

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
            for append in batch:
                append.wake.set()
            if successor is not None:
                successor.wake.set()  # not done: it leads the next commit

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
