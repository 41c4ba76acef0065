"""A patient's clinical events as they count now, kept incrementally (pure: no storage).

Each clinical event is an `Item`: the body first recorded, the body in force (its latest
amendment's replacement) and its fate (active, amended, retracted) with the corrections that
decided it. `InForce` keeps the items of one stream in clinical order and takes the stream's
entries one at a time, so that a caller holding it applies a new event without going over the
history again: a new event at or after the latest clinical date is appended, a late entry (an
earlier date) and an amendment that moves an event's date are placed by binary search.

The order is the one SPEC §4 gives: partial dates by their earliest instant, ties by stream
version. `build(history)` gives the same items from a whole history at once.

This is the one place corrections are applied: the write side's aggregate (`domain.patient`)
keeps its rules' state in an `InForce` too, reading it through the stream-order views
`bodies()`, `statuses()` and `tracked(cls)` (the bodies in force of one type, kept as entries
arrive so a rule that needs only the deaths does not walk the stream).

`copy()` shares the items with its twin and each side replaces an item by its own copy before
the first change to it (a loaded patient is copied for every caller: a copy costs the
containers, not the items). `state()` / `restored()` give the items in a few lists of stream
versions, for a snapshot to keep beside the entries (`domain.ledger.snapshots`): restoring is
a look-up per item, not the fold again, and an item nothing corrected reads its body from the
entries only when something first needs it (most never do before the patient leaves memory).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import msgspec

from domain import events as ev
from domain.dates import PartialDate, parse
from domain.stream_entries import Entries

Status = Literal["active", "amended", "retracted"]
# What one entry did to the items: a new last item, a new item placed earlier (a late entry),
# a changed item (amended or retracted), or nothing (a correction of an unknown event).
Change = Literal["appended", "inserted", "corrected", "ignored"]
E = TypeVar("E", bound=ev.ClinicalEvent)


@dataclass(frozen=True)
class Correction:
    event_id: UUID
    kind: Literal["amended", "retracted"]
    version: int
    recorded_at: datetime | None
    recorded_by: str | None
    reason: str

    @classmethod
    def of(
        cls, fix: ev.EventAmended | ev.EventRetracted, kind: Literal["amended", "retracted"]
    ) -> Correction:
        """What a stored correction event says of its target."""
        assert fix.event_id is not None and fix.version is not None
        return cls(
            event_id=fix.event_id,
            kind=kind,
            version=fix.version,
            recorded_at=fix.recorded_at,
            recorded_by=fix.recorded_by,
            reason=fix.reason,
        )


@dataclass(slots=True)
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


_CORRECTIONS = (ev.EventAmended, ev.EventRetracted)


class State(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """An `InForce` as stream versions (`InForce.state`): what it holds, read back from the
    entries it was built of (`InForce.restored`)."""

    items: list[int]  # each item's version, in stream order of its first recording
    # For each corrected item: its version, then its corrections' (the body in force is the
    # latest amendment's replacement, its fate the latest correction's kind).
    corrected: list[list[int]]
    order: list[int]  # the items' versions in clinical order
    days: list[int]  # the proleptic ordinal of each one's sort date, in the same order
    tracked: dict[str, list[int]]  # event tag -> the versions of its tracked items, in order


class InForce:
    """The items of one stream in clinical order, kept as its entries arrive (stream order).

    `track` names event types whose bodies in force are also kept by type (`tracked`)."""

    __slots__ = ("_by_id", "_keys", "_order", "_owned", "_tracked", "version")

    def __init__(self, track: tuple[type[ev.ClinicalEvent], ...] = ()) -> None:
        self._by_id: dict[UUID, Item] = {}  # in stream order of the first recording
        self._order: list[Item] = []
        self._keys: list[tuple[date, int]] = []
        self._tracked: dict[type, dict[UUID, ev.ClinicalEvent]] = {cls: {} for cls in track}
        # Once copied: the items this one may change in place (it shares the others with a
        # copy). None: never copied, every item is its own.
        self._owned: set[UUID] | None = None
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

    def bodies(self) -> Mapping[UUID, ev.ClinicalEvent]:
        """The bodies in force (retracted ones left out) by event id, in stream order."""
        return _Bodies(self._by_id)

    def statuses(self) -> Mapping[UUID, Status]:
        """Each clinical event's fate by event id, in stream order."""
        return _Statuses(self._by_id)

    def tracked(self, cls: type[E]) -> Mapping[UUID, E]:
        """The bodies in force of a type named in `track`, in stream order (kept, not walked)."""
        return self._tracked[cls]  # type: ignore[return-value]

    def copy(self) -> InForce:
        """A copy whose items may change apart from these (the bodies are immutable): the items
        are shared until either side changes one, which it then replaces by its own."""
        twin = InForce()
        twin._by_id = dict(self._by_id)
        twin._order = list(self._order)
        twin._keys = list(self._keys)
        twin._tracked = {cls: dict(index) for cls, index in self._tracked.items()}
        twin.version = self.version
        twin._owned, self._owned = set(), set()
        return twin

    def state(self) -> State:
        """What `restored` needs, beside the entries, to give this again."""
        return State(
            items=[item.version for item in self._by_id.values()],
            corrected=[
                [item.version, *[c.version for c in item.corrections]]
                for item in self._by_id.values()
                if item.corrections
            ],
            order=[item.version for item in self._order],
            days=[key[0].toordinal() for key in self._keys],
            tracked={
                ev.tag_of(cls): [self._by_id[key].version for key in index]
                for cls, index in self._tracked.items()
            },
        )

    @classmethod
    def restored(
        cls,
        entries: Entries,
        state: State,
        track: tuple[type[ev.ClinicalEvent], ...] = (),
    ) -> InForce:
        """The `InForce` whose `state()` was `state`, over the stream `entries` (versions
        1..n, in order) it was built of: the same items, order and tracked bodies as applying
        the entries gives, without placing or sorting anything again. An item nothing
        corrected reads its body from `entries` when it is first needed (`_Unread`); the
        corrected and the tracked ones are read now. A state that does not fit the entries
        raises (ValueError, LookupError)."""
        restored = cls(track)
        by_id: dict[UUID, Item] = restored._by_id
        by_version: dict[int, Item] = {}
        ids, fixed = entries.ids, {version for version, *_ in state.corrected}
        if state.items and not (min(state.items) > 0 and max(state.items) <= len(ids)):
            raise LookupError("the state names versions that are not in the stream")
        unread = _Unread.__new__
        for version in state.items:
            event_id = ids[version - 1]
            if version in fixed:
                original: ev.ClinicalEvent = entries[version - 1]  # type: ignore[assignment]
                if original.is_correction:
                    raise ValueError(f"version {version} is not a clinical event")
                item = Item(event_id, version, original, original, "active", [])
            else:
                item = unread(_Unread)
                item.event_id, item.version, item.entries = event_id, version, entries
            by_id[event_id] = by_version[version] = item
        for version, *fixes in state.corrected:
            _correct(by_version[version], [entries[v - 1] for v in fixes])
        restored._order = [by_version[version] for version in state.order]
        restored._keys = list(zip(map(date.fromordinal, state.days), state.order, strict=True))
        for tag, versions in state.tracked.items():
            index = restored._tracked[ev.EVENT_TYPES[tag]]
            for version in versions:
                item = by_version[version]
                index[item.event_id] = item.body
        if len(by_id) != len(state.items) or len(restored._tracked) != len(state.tracked):
            raise ValueError("the state does not fit these entries")
        restored.version = len(entries)
        return restored

    def _own(self, item: Item) -> Item:
        """`item`, or this side's copy of it if it is shared with a copy."""
        if self._owned is None or item.event_id in self._owned:
            return item
        mine = Item(
            item.event_id, item.version, item.original, item.body, item.status,
            list(item.corrections),
        )  # fmt: skip
        index = bisect_right(self._keys, item.sort_key) - 1
        assert self._order[index] is item
        self._order[index] = mine
        self._by_id[item.event_id] = mine
        self._owned.add(item.event_id)
        return mine

    def apply(self, entry: ev.AnyEvent) -> tuple[Change, Item | None]:
        """Take the stream's next entry; say what it changed and which item."""
        assert entry.event_id is not None and entry.version is not None
        self.version += 1
        if isinstance(entry, _CORRECTIONS):
            item = self._by_id.get(entry.target_event_id)
            if item is None:
                return "ignored", None
            item = self._own(item)
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
            item.corrections.append(Correction.of(entry, kind))
            self._track(item)
            return "corrected", item
        previous = self._by_id.get(entry.event_id)
        if previous is not None:  # an id used twice (never stored by the ledger): the later
            self._remove(previous, previous.sort_key)
        item = Item(entry.event_id, entry.version, entry, entry)
        self._by_id[entry.event_id] = item
        if self._owned is not None:
            self._owned.add(entry.event_id)
        self._track(item)
        return ("appended" if self._place(item) else "inserted"), item

    def _track(self, item: Item) -> None:
        if not self._tracked:
            return
        # An amendment keeps the target's type (SPEC §3), so an item never moves between these.
        # Keyed by the event's own class: a body from a trusted decode is of its twin class.
        index = self._tracked.get(ev.event_class(item.body))
        if index is None:
            return
        if item.status == "retracted":
            index.pop(item.event_id, None)
        else:
            index[item.event_id] = item.body

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


class _Unread(Item):
    """A restored item nothing corrected: active, no corrections, its body the entry first
    recorded, read from the stream's entries the first time it is needed (then kept). Only
    its id and version are set when it is made: a cold load makes a thousand of these."""

    __slots__ = ("entries",)
    entries: Entries

    def __getattr__(self, name: str) -> Any:
        # Called only for a slot not set yet (set from then on, by this or by a change).
        value: Any
        if name == "status":
            value = "active"
        elif name == "corrections":
            value = []
        elif name in ("original", "body"):
            value = self.entries[self.version - 1]
            if value.is_correction:
                raise ValueError(f"version {self.version} is not a clinical event")
        else:
            raise AttributeError(name)
        setattr(self, name, value)
        return value


def _correct(item: Item, fixes: list[ev.AnyEvent]) -> None:
    """`item` as its corrections `fixes` (in stream order) leave it (`InForce.restored`)."""
    for fix in fixes:
        kind: Literal["amended", "retracted"]
        if isinstance(fix, ev.EventAmended):
            kind, item.body = "amended", fix.replacement
        elif isinstance(fix, ev.EventRetracted):
            kind = "retracted"
        else:
            raise ValueError(f"version {fix.version} is not a correction")
        if fix.target_event_id != item.event_id or fix.event_id is None or fix.version is None:
            raise ValueError(f"version {fix.version} corrects another event")
        item.status = kind
        item.corrections.append(Correction.of(fix, kind))


class _Bodies(Mapping[UUID, ev.ClinicalEvent]):
    __slots__ = ("_by_id",)

    def __init__(self, by_id: dict[UUID, Item]) -> None:
        self._by_id = by_id

    def __getitem__(self, key: UUID) -> ev.ClinicalEvent:
        item = self._by_id[key]
        if item.status == "retracted":
            raise KeyError(key)
        return item.body

    def __iter__(self) -> Iterator[UUID]:
        return (key for key, item in self._by_id.items() if item.status != "retracted")

    def __len__(self) -> int:
        return sum(1 for item in self._by_id.values() if item.status != "retracted")

    def values(self) -> Iterator[ev.ClinicalEvent]:  # type: ignore[override]
        return (item.body for item in self._by_id.values() if item.status != "retracted")


class _Statuses(Mapping[UUID, Status]):
    __slots__ = ("_by_id",)

    def __init__(self, by_id: dict[UUID, Item]) -> None:
        self._by_id = by_id

    def __getitem__(self, key: UUID) -> Status:
        return self._by_id[key].status

    def __iter__(self) -> Iterator[UUID]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)


def build(history: Iterable[ev.AnyEvent]) -> InForce:
    state = InForce()
    for entry in history:
        state.apply(entry)
    return state
