"""A mapper that stores each event as its flat ledger JSON and decodes it with msgspec.

The stored `state` is exactly the event's JSON form (what history and export show), optionally
encrypted by the library's cipher. The topic names the event class, so the notification log can
be read for types without decrypting. `class_version` upcasting still works: an event class with
`class_version > 1` stores that number in the state, and older states are upcast on the way in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from domain import events as ev
from domain.codec import convert_stored, decode_stored
from domain.ledger.patient_keys import PatientKeys, is_sealed
from domain.patient import EVENT_CLASS_BY_TOPIC, Recorded


class LedgerMapper(Mapper[str]):
    def __init__(self, keys: PatientKeys | None = None, **kwargs: Any) -> None:
        super().__init__(transcoder=JSONTranscoder(), **kwargs)
        # With a master key: every new event is sealed under its patient's own data key
        # (domain/ledger/patient_keys.py). States written before that (one store-wide key, or
        # none) are still read as they were written.
        self.keys = keys

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: Recorded = domain_event
        state = ev.encode(event.entry)
        if event.class_version > 1:
            data = msgspec.json.decode(state)
            data["class_version"] = event.class_version
            state = ev.encode(data)
        if self.keys is not None:
            state = self.keys.seal(
                event.originator_id, event.originator_version, event.TOPIC, event.entry, state
            )
        else:
            if self.compressor:
                state = self.compressor.compress(state)
            if self.cipher:
                state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=event.TOPIC,
            state=state,
        )

    def plaintext(self, stored: StoredEvent) -> bytes:
        state = bytes(stored.state)
        if self.keys is not None and is_sealed(state):
            return self.keys.open(
                str(stored.originator_id), stored.originator_version, stored.topic, state
            )
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return state

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = EVENT_CLASS_BY_TOPIC[stored_event.topic]
        state = self.plaintext(stored_event)
        if cls.class_version > 1 or b'"class_version"' in state:
            entry = self._upcast(cls, msgspec.json.decode(state))
        else:
            entry = decode_stored(state)
        return cls(
            originator_id=str(stored_event.originator_id),
            originator_version=stored_event.originator_version,
            timestamp=entry.recorded_at or datetime.now(UTC),
            entry=entry,
        )

    @staticmethod
    def _upcast(cls: type[Recorded], data: dict[str, Any]) -> ev.AnyEvent:
        version = data.pop("class_version", 1)
        while version < cls.class_version:
            getattr(cls, f"upcast_v{version}_v{version + 1}")(data)
            version += 1
        return convert_stored(data)
