"""A rebuild over worker processes: reading, decrypting, decoding and folding on every core.

The parent process hands out ranges of notification ids, computes the rows of one partition of
the patients (by patient id) itself and writes the views; each worker process (its own
`Ledger` on the same store) reads the range itself and computes the rows of the patients of
its partition with the same `Projection` the in-process catch-up uses, so the content is
identical. Nothing but the ranges and the computed rows
crosses between processes. The parent keeps the next range in the workers' hands while it
writes the current one, and commits each range with its tracking position as the catch-up
does: a killed rebuild resumes from its last committed batch. A worker whose parent is gone
(killed) stops by itself.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import zlib
from collections.abc import Sequence
from multiprocessing.queues import Queue
from typing import Any

from domain.ledger.application import Ledger, StoreConfig
from projections.projection import Projection, Rows, notifications

log = logging.getLogger(__name__)

# Seconds a worker waits for its next range before it looks whether its parent still lives.
PARENT_CHECK = 1.0


# The parent's share of the patients against a worker's 1: it also writes every batch.
PARENT_WEIGHT = 0.85
_SLOTS = 1000


def bounds(count: int) -> list[int]:
    """The slots (of `_SLOTS`, by patient id) of the parent (partition 0) and of each of
    `count` workers: partition i holds the slots from bounds[i] up to bounds[i + 1]."""
    share = _SLOTS * PARENT_WEIGHT / (count + PARENT_WEIGHT)
    step = (_SLOTS - share) / count
    return [0, *(round(share + i * step) for i in range(count)), _SLOTS]


def own_part(notes: Sequence[Any], index: int, limits: Sequence[int]) -> list[Any]:
    """The notifications of the patients of partition `index` (the same in every process)."""
    low, high = limits[index], limits[index + 1]
    return [n for n in notes if low <= zlib.crc32(str(n.originator_id).encode()) % _SLOTS < high]


def _work(
    config: StoreConfig,
    index: int,
    limits: list[int],
    parent: int,
    inbox: Queue[Any],
    outbox: Queue[Any],
) -> None:
    ledger = Ledger(config)
    projection = Projection(ledger)
    try:
        while True:
            try:
                task = inbox.get(timeout=PARENT_CHECK)
            except queue.Empty:
                if os.getppid() != parent:
                    return  # the parent died (kill -9, say): nobody wants these rows
                continue
            if task is None:
                return
            start, stop = task
            try:
                notes = notifications(ledger, start, stop - start + 1, stop)
                mine = own_part(notes, index, limits)
                last = notes[-1].id if notes else None
                outbox.put(("ok", projection.rows(mine), len(notes), last))
            except Exception as exc:  # told to the parent, which stops the rebuild
                log.exception("a rebuild worker failed")
                outbox.put(("error", repr(exc), 0, None))
    finally:
        ledger.close()


class Workers:
    """`count` worker processes, each with the patients of one partition (`bounds`); the
    parent computes partition 0 itself (`own_part`), between writing batches."""

    def __init__(self, config: StoreConfig, count: int) -> None:
        context = mp.get_context("spawn")  # a fresh interpreter: no inherited connections
        self.count = count
        self.limits = bounds(count)
        self._inboxes: list[Queue[Any]] = [context.Queue() for _ in range(count)]
        self._outboxes: list[Queue[Any]] = [context.Queue() for _ in range(count)]
        self._processes = [
            context.Process(
                target=_work,
                args=(config, index, self.limits, os.getpid(), inbox, outbox),
                name="oncoledger-rebuild",
                daemon=True,
            )
            for index, (inbox, outbox) in enumerate(
                zip(self._inboxes, self._outboxes, strict=True), start=1
            )
        ]
        for process in self._processes:
            process.start()

    def send(self, start: int, stop: int) -> None:
        """Hand the notification ids `start`..`stop` to the workers (returns at once;
        `receive` gives their rows)."""
        for inbox in self._inboxes:
            inbox.put((start, stop))

    def receive(self, own: Rows, size: int, last: int | None) -> Rows:
        """The rows of the earliest range sent and not yet received, merged with `own` (the
        parent's partition of the same range, `size` notifications up to id `last`)."""
        events: list[Any] = list(own[0])
        patients: list[list[Any]] = list(own[1])
        survival: list[tuple[Any, ...]] = list(own[2])
        failed = None
        seen: set[tuple[int, int | None]] = {(size, last)}
        for outbox, process in zip(self._outboxes, self._processes, strict=True):
            status, rows, size, last = self._get(outbox, process)
            if status != "ok":
                failed = rows
                continue
            seen.add((size, last))
            events.extend(rows[0])
            patients.extend(rows[1])
            survival.extend(rows[2])
        if failed is not None:
            raise RuntimeError(f"a rebuild worker failed: {failed}")
        if len(seen) != 1:  # never expected: the range is below the head, already committed
            raise RuntimeError(f"the rebuild workers read different notifications: {seen}")
        events.sort(key=lambda row: int(row[1]))  # recording order, as one process writes it
        return events, patients, survival

    @staticmethod
    def _get(outbox: Queue[Any], process: Any) -> tuple[str, Any, int, int | None]:
        while True:
            try:
                answer: tuple[str, Any, int, int | None] = outbox.get(timeout=1.0)
                return answer
            except queue.Empty:
                if not process.is_alive():  # it died (killed, or could not start)
                    raise RuntimeError(
                        f"a rebuild worker stopped (exit code {process.exitcode})"
                    ) from None

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
