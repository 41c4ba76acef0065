"""A patient's clinical events as they count now: corrections applied, in clinical order.

Every read model starts here. Amended events count with their latest replacement, retracted
events do not count at all; both keep their original and the corrections that changed them, so
the timeline can show who corrected what, when and why next to the original.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TypeVar

from domain import events as ev
from domain.in_force import Correction, Item, Status, build

__all__ = ["Correction", "Item", "Status", "all_items", "in_force", "of_type"]

T = TypeVar("T", bound=ev.Event)

_last = threading.local()


def all_items(history: Iterable[ev.AnyEvent]) -> list[Item]:
    """Every clinical event, retracted ones included, in clinical order.

    Every read model of a patient starts here, so the result for the history list last seen by
    this thread is kept and handed out again (callers only read it)."""
    if isinstance(history, list):
        seen = getattr(_last, "seen", None)
        if seen is not None and seen[0] is history and seen[1] == len(history):
            result: list[Item] = seen[2]
            return result
        items = _build(history)
        _last.seen = (history, len(history), items)
        return items
    return _build(history)


def _build(history: Iterable[ev.AnyEvent]) -> list[Item]:
    return build(history).items


def in_force(history: Iterable[ev.AnyEvent]) -> list[Item]:
    """The clinical events that count: amended ones as replaced, retracted ones left out."""
    return [item for item in all_items(history) if item.status != "retracted"]


def of_type(items: Sequence[Item], cls: type[T]) -> list[tuple[Item, T]]:
    return [(item, item.body) for item in items if isinstance(item.body, cls)]
