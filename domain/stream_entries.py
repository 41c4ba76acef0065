"""A patient's entries in stream order, some of them still the bytes a snapshot held.

A cold load of a long stream restores the patient from its snapshot
(`domain.ledger.snapshots`); decoding its thousand entries into event structs would be most of
that load, and an append reads only a few of them (a correction's target, a re-sent event's
original, the registration). So a restored patient keeps each entry as the snapshot's bytes
and decodes one the first time it is read (kept decoded from then on); the event ids are kept
apart, decoded at once, for the idempotency look-up every append makes. Bytes kept here are
never re-encoded: the next snapshot writes them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import overload
from uuid import UUID

import msgspec

from domain import events as ev

Decode = Callable[[msgspec.Raw], ev.AnyEvent]


class Entries(Sequence[ev.AnyEvent]):
    """The entries (versions 1..n), each decoded or still `msgspec.Raw`, and their event ids."""

    __slots__ = ("_all_read", "_decode", "_items", "ids")

    def __init__(
        self,
        items: Sequence[ev.AnyEvent | msgspec.Raw] = (),
        ids: list[UUID] | None = None,
        decode: Decode | None = None,
    ) -> None:
        self._items: list[ev.AnyEvent | msgspec.Raw] = list(items)
        self.ids: list[UUID] = ids if ids is not None else []
        # Kept even once every entry is decoded: another thread may have read an entry as raw
        # bytes just before this one replaced it, and decodes it again (to an equal entry).
        self._decode = decode
        self._all_read = decode is None  # then reads are plain list reads
        if len(self._items) != len(self.ids):
            raise ValueError("as many event ids as entries are needed")

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> ev.AnyEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[ev.AnyEvent]: ...
    def __getitem__(self, index: int | slice) -> ev.AnyEvent | list[ev.AnyEvent]:
        if isinstance(index, slice):
            if self._all_read:
                return self._items[index]  # type: ignore[return-value]
            return [self._read(i) for i in range(*index.indices(len(self._items)))]
        item = self._items[index]
        if type(item) is msgspec.Raw:
            return self._read(index % len(self._items))
        return item

    def __iter__(self) -> Iterator[ev.AnyEvent]:
        if not self._all_read:
            for index in range(len(self._items)):
                self._read(index)
            self._all_read = True
        return iter(self._items)  # type: ignore[arg-type]

    def _read(self, index: int) -> ev.AnyEvent:
        item = self._items[index]
        if not isinstance(item, msgspec.Raw):
            return item
        assert self._decode is not None
        entry = self._decode(item)
        if entry.version != index + 1 or entry.event_id != self.ids[index]:
            # Sealed by this ledger, so never so unless a snapshot was written wrong.
            raise ValueError(f"the snapshot's entry at version {index + 1} is not that entry")
        self._items[index] = entry
        return entry

    def append(self, entry: ev.AnyEvent) -> None:
        assert entry.event_id is not None
        self._items.append(entry)
        self.ids.append(entry.event_id)

    def copy(self) -> Entries:
        """A copy with its own lists (nothing is decoded for it)."""
        twin = Entries(self._items, list(self.ids), self._decode)
        twin._all_read = self._all_read
        return twin

    def stored(self, upto: int) -> Sequence[ev.AnyEvent | msgspec.Raw]:
        """The first `upto` entries as a snapshot encodes them: those never decoded as the
        bytes they were read from."""
        return self._items[:upto]
