"""`oncoledger follow`: print stored events as JSON Lines as they are stored.

One line per event (its flat JSON with `position`), flushed at once, so a shell pipeline sees
each event as it happens: `oncoledger follow --after 0 | jq -c 'select(.type=="ctc_count")'`.
Ctrl-C, or the reader at the other end of the pipe going away, stops it cleanly (exit 0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import click
import msgspec

from cli.session import Session, pass_session

# Idle waits are cut into slices this long, so Ctrl-C is answered promptly.
_IDLE_SECONDS = 5.0
_BATCH = 500
_json = msgspec.json.Encoder()


@click.command()
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=None,
    metavar="POSITION",
    help="Print events after this position (0: from the first event). Default: only events "
    "stored from now on.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after printing this many events.",
)
@pass_session
def follow(session: Session, after: int | None, count: int | None) -> None:
    """Print every stored event as JSON Lines as it is stored, in recording order.

    Each line is one event in its flat JSON form with its `position` (the audit feed's).
    Runs until Ctrl-C, until the reading end of a pipe closes, or until --count events.
    """
    service = session.open()
    feed = service.feed
    position = feed.head() if after is None else after
    printed = 0
    out = sys.stdout.buffer
    with _stop_signals() as stopped:
        try:
            while not stopped() and (count is None or printed < count):
                page = feed.page(
                    position, _BATCH if count is None else min(_BATCH, count - printed)
                )
                if not page.events:
                    feed.wait(position, _IDLE_SECONDS, until=stopped)
                    continue
                for event in page.events:
                    out.write(_json.encode(event) + b"\n")
                    out.flush()
                printed += len(page.events)
                position = page.next_after
                session.log_read("feed")
        except KeyboardInterrupt:  # a second Ctrl-C while the first is being acted on
            return
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly. Point stdout at /dev/null so the
            # interpreter's own flush at exit does not fail on the closed pipe.
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], bool]]:
    """Ctrl-C and SIGTERM only raise a flag that the loop reads between steps (a second one
    stops the command at once, as Python's defaults do).

    Python's default for Ctrl-C raises KeyboardInterrupt at whatever bytecode is running, which
    can leave a lock of the ledger's held between its acquire and its `with` block, and the
    command's close then waits on it for ever (seen: a follower that did not exit). Outside the
    main thread (no signals there) the flag is never raised."""
    raised: list[int] = []  # a plain list: the handler takes no lock (a second signal may
    # arrive while the first one's handler runs)

    def _raise(signum: int, _frame: FrameType | None) -> None:
        if raised:  # a second signal: the loop is stuck (a stalled pipe, say); stop as before
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        raised.append(signum)

    def stopped() -> bool:
        return bool(raised)

    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return
    previous = {number: signal.signal(number, _raise) for number in _SIGNALS}
    try:
        yield stopped
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
