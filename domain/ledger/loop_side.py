"""What an append on an event loop waits with, so that no thread is ever parked on a lock whose
holder needs a thread to finish.

An append on the loop (`Ledger.append_async`) holds its patient's lock (a thread lock, shared
with the appends of threads) across the awaited commit, and hands what must read the store to
a thread. Two rules keep that from ever deadlocking, whatever the load:

- Appends on the loop to one patient queue on an asyncio lock of the patient's stripe first,
  not in threads: a burst of requests for one patient parks no thread at all.
- The rest of an append that holds its lock runs in threads of its own (`continue_in`), never
  in the pool the handlers and the fallbacks wait in: those may all be blocked on that very
  lock, and the holder would wait behind them for ever (seen: 17 concurrent appends to one
  patient due for a snapshot stopped the whole API). Such a continuation waits for no other
  patient's lock, so it always finishes.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Threads for the rests of appends that hold their patient's lock (cold loads, snapshots, a
# refusal judged again on the stored stream, a failed commit settled).
CONTINUATION_THREADS = 8


class LoopSide:
    def __init__(self, stripe: Callable[[str], int]) -> None:
        self._stripe = stripe
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[int, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self._threads: ThreadPoolExecutor | None = None

    def lock(self, patient_id: str) -> asyncio.Lock:
        """The running loop's lock for `patient_id`'s stripe."""
        loop = asyncio.get_running_loop()
        with self._guard:
            locks = self._locks.get(loop)
            if locks is None:
                locks = self._locks[loop] = {}
            stripe = self._stripe(patient_id)
            lock = locks.get(stripe)
            if lock is None:
                lock = locks[stripe] = asyncio.Lock()
            return lock

    async def continue_in(self, fn: Callable[[], T]) -> T:
        """`fn()` in a continuation thread (see the module's docstring)."""
        with self._guard:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(
                    CONTINUATION_THREADS, thread_name_prefix="oncoledger-append"
                )
            threads = self._threads
        return await asyncio.get_running_loop().run_in_executor(threads, fn)

    def close(self) -> None:
        with self._guard:
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True)
