"""The one reading of event JSON: strict conversion of client input to the event Structs, the
trusted decode of what the ledger stored, and the one parser of msgspec's error messages into
the field they are about."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from domain import events as ev
from domain.errors import ValidationFailed

T = TypeVar("T")


def convert_strict(data: Any, type_: type[T]) -> T:
    """`data` (parsed JSON) as `type_`, strictly; a refusal is a `ValidationFailed` carrying
    msgspec's own message and the field it names."""
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc), field=field_of(str(exc)), rule="schema") from exc


def decode_entry(data: Any) -> ev.AnyEvent:
    """Validate a parsed JSON object as an event, as a `ValidationFailed` naming the field."""
    try:
        return ev.convert_event(data)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc), field=field_of(str(exc)), rule="schema") from exc


_stored_decoder = msgspec.json.Decoder(ev.TrustedEvent)


def decode_stored(state: bytes) -> ev.AnyEvent:
    """An event the ledger itself stored (its plaintext JSON), by the trusted decode path: the
    shape and types are checked, the input constraints it met when recorded are not run again
    (`domain.events`, the trusted twins). Never for client input: that is `decode_entry`."""
    entry: ev.AnyEvent = _stored_decoder.decode(state)
    return entry


def convert_stored(data: Any) -> ev.AnyEvent:
    """`decode_stored` for stored JSON already parsed (an upcast state)."""
    entry: ev.AnyEvent = msgspec.convert(data, ev.TrustedEvent)
    return entry


_NAMED_FIELD = ("Object contains unknown field `", "Object missing required field `")


def field_of(message: str) -> str | None:
    """The field a msgspec error is about: its path, plus the name an object error gives."""
    text, _, path = message.partition(" - at `$")
    path = path.rstrip("`").lstrip(".")
    for prefix in _NAMED_FIELD:
        if text.startswith(prefix):
            name = text[len(prefix) :].split("`", 1)[0]
            return f"{path}.{name}" if path else name
    return path or None
