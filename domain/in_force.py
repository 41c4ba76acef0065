"""A patient's clinical events as they count now, kept incrementally (pure: no storage).

Each clinical event is an `Item`: the body first recorded, the body in force (its latest
amendment's replacement) and its fate (active, amended, retracted) with the corrections that
decided it. `InForce` keeps the items of one stream in clinical order and takes the stream's
entries one at a time, so that a caller holding it applies a new event without going over the
history again: a new event at or after the latest clinical date is appended, a late entry (an
earlier date) and an amendment that moves an event's date are placed by binary search.

The order is the one SPEC §4 gives: partial dates by their earliest instant, ties by stream
version. `build(history)` gives the same items from a whole history at once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from domain import events as ev
from domain.dates import PartialDate, parse

Status = Literal["active", "amended", "retracted"]
# What one entry did to the items: a new last item, a new item placed earlier (a late entry),
# a changed item (amended or retracted), or nothing (a correction of an unknown event).
Change = Literal["appended", "inserted", "corrected", "ignored"]


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


class InForce:
    """The items of one stream in clinical order, kept as its entries arrive (stream order)."""

    __slots__ = ("_by_id", "_keys", "_order", "version")

    def __init__(self) -> None:
        self._by_id: dict[UUID, Item] = {}
        self._order: list[Item] = []
        self._keys: list[tuple[date, int]] = []
        self.version = 0  # stream entries applied

    def __len__(self) -> int:
        return len(self._order)

    @property
    def items(self) -> list[Item]:
        """Every clinical event, retracted ones included, in clinical order (do not mutate)."""
        return self._order

    def in_force(self) -> list[Item]:
        return [item for item in self._order if item.status != "retracted"]

    def last(self) -> Item | None:
        return self._order[-1] if self._order else None

    def get(self, event_id: UUID) -> Item | None:
        return self._by_id.get(event_id)

    def apply(self, entry: ev.AnyEvent) -> tuple[Change, Item | None]:
        """Take the stream's next entry; say what it changed and which item."""
        assert entry.event_id is not None and entry.version is not None
        self.version += 1
        if isinstance(entry, ev.EventAmended | ev.EventRetracted):
            item = self._by_id.get(entry.target_event_id)
            if item is None:
                return "ignored", None
            kind: Literal["amended", "retracted"]
            if isinstance(entry, ev.EventAmended):
                kind = "amended"
                before = item.sort_key
                item.body = entry.replacement
                if item.sort_key != before:
                    self._remove(item, before)
                    self._place(item)
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
            return "corrected", item
        previous = self._by_id.get(entry.event_id)
        if previous is not None:  # an id used twice (never stored by the ledger): the later
            self._remove(previous, previous.sort_key)
        item = Item(entry.event_id, entry.version, entry, entry)
        self._by_id[entry.event_id] = item
        return ("appended" if self._place(item) else "inserted"), item

    def _place(self, item: Item) -> bool:
        key = item.sort_key
        if not self._keys or key >= self._keys[-1]:
            self._keys.append(key)
            self._order.append(item)
            return True
        index = bisect_right(self._keys, key)
        self._keys.insert(index, key)
        self._order.insert(index, item)
        return False

    def _remove(self, item: Item, key: tuple[date, int]) -> None:
        index = bisect_right(self._keys, key) - 1
        assert self._order[index] is item
        del self._keys[index]
        del self._order[index]


def build(history: Iterable[ev.AnyEvent]) -> InForce:
    state = InForce()
    for entry in history:
        state.apply(entry)
    return state
