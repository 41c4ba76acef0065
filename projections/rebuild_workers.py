"""A rebuild over worker processes: reading, decrypting, decoding and folding on every core.

The patients are split by id into ranges (`partitions`), one per process, each holding about
its share of the events. The parent process hands out ranges of notification ids, computes the
rows of its own patients and writes the views; each worker process (its own `Ledger` on the
same store) reads, of each range, only the events of its patients (on SQLite the query picks
them: the others' rows never become objects there) and computes their rows with the same
`Projection` the in-process catch-up uses, so the content is identical. Nothing but the ranges
and the computed rows crosses between processes. The parent keeps the next range in the
workers' hands while it writes the current one, and commits each range with its tracking
position as the catch-up does: a killed rebuild resumes from its last committed batch (with
ranges of patients drawn again). A worker whose parent is gone (killed) stops by itself.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
from collections.abc import Sequence
from itertools import pairwise
from multiprocessing.queues import Queue
from operator import itemgetter
from typing import Any

from domain.ledger.application import Ledger, StoreConfig
from projections.projection import Part, Projection, Rows, fewer_collections, notifications

log = logging.getLogger(__name__)

# Seconds a worker waits for its next range before it looks whether its parent still lives.
PARENT_CHECK = 1.0


# The parent's share of the events against a worker's 1: it also writes every batch and builds
# the indexes (at 1,000,000 events on 2 cores, 0.85 left the parent ~1.3x its worker's CPU).
PARENT_WEIGHT = 0.7
# Events sampled (evenly over the range rebuilt) to split the patients by id into shares.
SAMPLES = 256


def partitions(ledger: Ledger, start: int, head: int, count: int) -> list[Part]:
    """The patients of the parent (first) and of each of `count` workers, as ranges of ids
    holding about their share of the events `start`..`head`: every id falls in exactly one."""
    step = max(1, (head - start + 1) // SAMPLES)
    sampled = (notifications(ledger, at, 1, head) for at in range(start, head + 1, step))
    ids = sorted(note[1] for notes in sampled for note in notes)
    total = PARENT_WEIGHT + count
    shares = [PARENT_WEIGHT, *([1.0] * count)]
    bounds: list[str | None] = [None]
    done = 0.0
    for share in shares[:-1]:
        done += share
        bounds.append(ids[min(len(ids) - 1, int(done / total * len(ids)))] if ids else "")
    bounds.append(None)
    return list(pairwise(bounds))


def _work(
    config: StoreConfig,
    part: Part,
    parent: int,
    inbox: Queue[Any],
    outbox: Queue[Any],
) -> None:
    ledger = Ledger(config)
    projection = Projection(ledger)
    try:
        with fewer_collections():
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
                    notes = notifications(ledger, start, stop - start + 1, stop, part)
                    last = notes[-1][0] if notes else None
                    outbox.put(("ok", projection.rows(notes), len(notes), last))
                except Exception as exc:  # told to the parent, which stops the rebuild
                    log.exception("a rebuild worker failed")
                    outbox.put(("error", repr(exc), 0, None))
    finally:
        ledger.close()


class Workers:
    """`count` worker processes, each with the patients of one of `parts` (`partitions`); the
    parent computes those of `parts[0]` itself, between writing batches."""

    def __init__(self, config: StoreConfig, parts: Sequence[Part]) -> None:
        context = mp.get_context("spawn")  # a fresh interpreter: no inherited connections
        count = len(parts) - 1
        self._inboxes: list[Queue[Any]] = [context.Queue() for _ in range(count)]
        self._outboxes: list[Queue[Any]] = [context.Queue() for _ in range(count)]
        self._processes = [
            context.Process(
                target=_work,
                args=(config, part, os.getpid(), inbox, outbox),
                name="oncoledger-rebuild",
                daemon=True,
            )
            for part, inbox, outbox in zip(parts[1:], self._inboxes, self._outboxes, strict=True)
        ]
        for process in self._processes:
            process.start()

    def send(self, start: int, stop: int) -> None:
        """Hand the notification ids `start`..`stop` to the workers (returns at once;
        `receive` gives their rows)."""
        for inbox in self._inboxes:
            inbox.put((start, stop))

    def receive(self, own: Rows, size: int, last: int | None) -> tuple[Rows, int, int | None]:
        """The rows of the earliest range sent and not yet received, merged with `own` (the
        parent's patients' rows of the same range, `size` notifications up to id `last`), with
        how many notifications the range held in all and the last one's id."""
        events: list[Any] = list(own[0])
        patients: list[list[Any]] = list(own[1])
        survival: list[tuple[Any, ...]] = list(own[2])
        failed = None
        for outbox, process in zip(self._outboxes, self._processes, strict=True):
            status, rows, theirs, their_last = self._get(outbox, process)
            if status != "ok":
                failed = rows
                continue
            size += theirs
            if their_last is not None and (last is None or their_last > last):
                last = their_last
            events.extend(rows[0])
            patients.extend(rows[1])
            survival.extend(rows[2])
        if failed is not None:
            raise RuntimeError(f"a rebuild worker failed: {failed}")
        events.sort(key=itemgetter(1))  # recording order, as one process writes it
        return (events, patients, survival), size, last

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
