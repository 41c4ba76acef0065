"""A rebuild over worker processes: decrypting, decoding and folding on every core.

The parent process reads the notifications in batches and writes the views; each worker
process (its own `Ledger` on the same store) computes the rows of the patients of its
partition (by patient id) with the same `Projection` the in-process catch-up uses, so the
content is identical. The parent keeps the next batch in the workers' hands while it writes the
current one, and commits each batch with its tracking position as the catch-up does: a killed
rebuild resumes from its last committed batch.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import zlib
from collections.abc import Sequence
from multiprocessing.queues import Queue
from typing import Any

from domain.ledger.application import Ledger, StoreConfig
from projections.projection import Projection, Rows

log = logging.getLogger(__name__)


def _work(config: StoreConfig, inbox: Queue[Any], outbox: Queue[Any]) -> None:
    ledger = Ledger(config)
    projection = Projection(ledger)
    try:
        while (batch := inbox.get()) is not None:
            try:
                outbox.put(("ok", projection.rows(batch)))
            except Exception as exc:  # told to the parent, which stops the rebuild
                log.exception("a rebuild worker failed")
                outbox.put(("error", repr(exc)))
    finally:
        ledger.close()


class Workers:
    """`count` worker processes, each with the patients of one partition."""

    def __init__(self, config: StoreConfig, count: int) -> None:
        context = mp.get_context("spawn")  # a fresh interpreter: no inherited connections
        self.count = count
        self._inboxes: list[Queue[Any]] = [context.Queue() for _ in range(count)]
        self._outboxes: list[Queue[Any]] = [context.Queue() for _ in range(count)]
        self._processes = [
            context.Process(
                target=_work, args=(config, inbox, outbox), name="oncoledger-rebuild", daemon=True
            )
            for inbox, outbox in zip(self._inboxes, self._outboxes, strict=True)
        ]
        for process in self._processes:
            process.start()

    def send(self, notifications: Sequence[Any]) -> None:
        """Hand one batch to the workers (returns at once; `receive` gives its rows)."""
        parts: list[list[Any]] = [[] for _ in range(self.count)]
        for n in notifications:
            parts[zlib.crc32(str(n.originator_id).encode()) % self.count].append(n)
        for inbox, part in zip(self._inboxes, parts, strict=True):
            inbox.put(part)

    def receive(self) -> Rows:
        """The rows of the earliest batch sent and not yet received."""
        events: list[Sequence[Any]] = []
        patients: list[list[Any]] = []
        survival: list[tuple[Any, ...]] = []
        failed = None
        for outbox, process in zip(self._outboxes, self._processes, strict=True):
            status, rows = self._get(outbox, process)
            if status != "ok":
                failed = rows
                continue
            events.extend(rows[0])
            patients.extend(rows[1])
            survival.extend(rows[2])
        if failed is not None:
            raise RuntimeError(f"a rebuild worker failed: {failed}")
        events.sort(key=lambda row: int(row[1]))  # recording order, as one process writes it
        return events, patients, survival

    @staticmethod
    def _get(outbox: Queue[Any], process: Any) -> tuple[str, Any]:
        while True:
            try:
                answer: tuple[str, Any] = outbox.get(timeout=1.0)
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
