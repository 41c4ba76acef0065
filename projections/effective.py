"""A patient's clinical events as they count now: corrections applied, in clinical order.

Every read model starts here. Amended events count with their latest replacement, retracted
events do not count at all; both keep their original and the corrections that changed them, so
the timeline can show who corrected what, when and why next to the original.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, TypeVar
from uuid import UUID

from domain import events as ev
from domain.dates import PartialDate, parse

T = TypeVar("T", bound=ev.Event)
Status = Literal["active", "amended", "retracted"]


@dataclass(frozen=True)
class Correction:
    event_id: UUID
    kind: Literal["amended", "retracted"]
    version: int
    recorded_at: datetime | None
    recorded_by: str | None
    reason: str


@dataclass
class Item:
    """One clinical event: its body in force (`body`), what was first recorded and its fate."""

    event_id: UUID
    version: int
    original: ev.ClinicalEvent
    body: ev.ClinicalEvent
    status: Status = "active"
    corrections: list[Correction] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.body.type

    @property
    def occurred(self) -> PartialDate:
        return parse(self.body.occurred)

    @property
    def day(self) -> date:
        """The day a computation uses (15th / 1 July imputed for partial dates)."""
        return self.occurred.imputed

    @property
    def approximate(self) -> bool:
        return not self.occurred.is_exact

    @property
    def sort_key(self) -> tuple[date, int]:
        # Partial dates sort by their earliest instant, ties by stream version (SPEC §4).
        return (self.occurred.earliest, self.version)


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
    items: dict[UUID, Item] = {}
    for entry in history:
        assert entry.event_id is not None and entry.version is not None
        if isinstance(entry, ev.EventAmended | ev.EventRetracted):
            item = items.get(entry.target_event_id)
            if item is None:
                continue
            kind: Literal["amended", "retracted"]
            if isinstance(entry, ev.EventAmended):
                kind = "amended"
                item.body = entry.replacement
            else:
                kind = "retracted"
            item.status = kind
            item.corrections.append(
                Correction(
                    event_id=entry.event_id,
                    kind=kind,
                    version=entry.version,
                    recorded_at=entry.recorded_at,
                    recorded_by=entry.recorded_by,
                    reason=entry.reason,
                )
            )
        else:
            items[entry.event_id] = Item(entry.event_id, entry.version, entry, entry)
    return sorted(items.values(), key=lambda item: item.sort_key)


def in_force(history: Iterable[ev.AnyEvent]) -> list[Item]:
    """The clinical events that count: amended ones as replaced, retracted ones left out."""
    return [item for item in all_items(history) if item.status != "retracted"]


def of_type(items: Sequence[Item], cls: type[T]) -> list[tuple[Item, T]]:
    return [(item, item.body) for item in items if isinstance(item.body, cls)]
