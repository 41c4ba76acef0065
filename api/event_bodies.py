"""Request bodies for events: each event type without the fields the server assigns.

An event's domain Struct (`domain.events`) carries its envelope: `version`, `recorded_at`,
`recorded_by`, `source`, `prev_hash`, `hash`. A client never sends those (the server refuses
them, 400), so the OpenAPI document must not offer them as inputs. Each `<Name>Create` here is
derived from its Struct, minus those fields and with every event inside it replaced by its own
`...Create`, so the two cannot drift apart; responses (a patient's history) keep the domain
Structs, envelope included.

These Structs only describe the bodies in the OpenAPI document: handlers take the raw JSON and
decode it into the domain Structs, which keeps every refusal (and its `rule`) as it was.
"""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from domain import events as ev

_SERVER_ASSIGNED = frozenset(ev.SERVER_FIELDS)


def _substitute(annotation: Any, created: dict[Any, Any]) -> Any:
    """`annotation` with every Struct that has a `...Create` replaced by it."""
    if annotation in created:
        return created[annotation]
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        return Annotated[(_substitute(inner, created), *metadata)]
    if get_origin(annotation) is list:
        return list[_substitute(get_args(annotation)[0], created)]  # type: ignore[misc]
    args = get_args(annotation)
    if args and get_origin(annotation) in (Union, type(int | None)):
        return Union[tuple(_substitute(arg, created) for arg in args)]  # noqa: UP007
    return annotation


def _create_body(cls: type[msgspec.Struct], created: dict[Any, Any]) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(cls):
        if field.name in _SERVER_ASSIGNED:
            continue
        annotation = _substitute(field.type, created)
        fields.append(
            (field.name, annotation) if field.required else (field.name, annotation, field.default)
        )
    config = cls.__struct_config__
    body = msgspec.defstruct(
        f"{cls.__name__}Create",
        fields,
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=True,
        tag_field=config.tag_field,
        tag=config.tag,
        module=__name__,
    )
    if config.tag:
        body.__doc__ = (
            f"A `{config.tag}` event as a client sends it: the server assigns `version`, "
            "`recorded_at`, `recorded_by`, `source`, `prev_hash` and `hash`."
        )
    else:
        body.__doc__ = cls.__doc__
    created[cls] = body
    return body


_CREATED: dict[Any, Any] = {}
_CLINICAL: tuple[type[ev.Event], ...] = get_args(ev.ClinicalEvent)
for _cls in (*_CLINICAL, *(c for c in ev.EVENT_TYPES.values() if c not in _CLINICAL)):
    _create_body(_cls, _CREATED)

EventCreate: Any = _substitute(ev.AnyEvent, _CREATED)


def request_body(cls: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The request form of `cls`: its fields less the server-assigned ones, with every event
    inside it in its request form; named `<cls>Create` in the OpenAPI document."""
    found: type[msgspec.Struct] | None = _CREATED.get(cls)
    return found if found is not None else _create_body(cls, _CREATED)
