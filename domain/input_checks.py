"""What the ledger accepts from outside before any schema sees it: JSON it can parse, text it
can store.

One parser for every entry point that reads JSON a user sent (REST bodies, `append` files,
`import` lines) and one check for every string in it, keys included: no NUL (PostgreSQL text
cannot hold it) and no unpaired surrogate (no UTF-8 encoding exists for it), at most
`MAX_DEPTH` levels of nesting. Each refusal is a `ValidationFailed` naming the JSON path.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from domain.errors import DomainError, ValidationFailed

# An event with a replacement with lesions with dimensions is 5 levels; a batch adds 2.
MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"


def parse_json(data: bytes | str, *, what: str = "the body") -> Any:
    """Parse untrusted JSON and check every string in it; a refusal names what and where."""
    try:
        parsed = msgspec.json.decode(data)
    except UnicodeDecodeError:
        raise ValidationFailed(
            f"{what} is not valid UTF-8 ({_utf8_error(data)})", field="$", rule="utf8"
        ) from None
    except UnicodeEncodeError as exc:  # text (not bytes) holding an unpaired surrogate
        raise ValidationFailed(
            f"{what} contains an unpaired surrogate at character {exc.start}, which cannot be "
            "stored; remove it",
            field="$",
            rule="storable_text",
        ) from None
    except RecursionError:
        raise ValidationFailed(
            f"{what} is nested more than {MAX_DEPTH} levels deep", field="$", rule="depth"
        ) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"{what} is not valid JSON: {exc}", field="$", rule="json") from None
    if not may_hold_unstorable(data):
        return parsed
    check_storable(parsed)
    return parsed


def may_hold_unstorable(json_text: bytes | str) -> bool:
    """False when JSON text that parsed cannot hold a NUL or exceed `MAX_DEPTH`: the parser
    refuses a raw NUL and every unpaired surrogate escape, so a NUL is only ever `\\u0000`, and
    nesting needs an opening bracket per level. (A cheap test that spares the walk.)"""
    raw = json_text.encode("utf-8", "surrogatepass") if isinstance(json_text, str) else json_text
    return b"\\u0000" in raw or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def _utf8_error(data: bytes | str) -> str:
    try:
        data.encode("utf-8") if isinstance(data, str) else data.decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        return f"byte {exc.start}: {exc.reason}"
    return "an undecodable string"


def strip_bom(data: bytes | str) -> bytes | str:
    """A leading UTF-8 byte order mark, which some editors write, is not part of the JSON."""
    if isinstance(data, bytes):
        return data.removeprefix(_BOM)
    return data.removeprefix("\ufeff")


def check_storable(value: Any, path: str = "$") -> None:
    """Refuse a NUL or an unpaired surrogate in any string (keys too), and over-deep nesting."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise ValidationFailed(
                f"`{where}` is nested more than {MAX_DEPTH} levels deep",
                field=_field(where),
                rule="depth",
            )
        if isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key!r}]"
                if isinstance(key, str):
                    _check_text(key, name)
                stack.append((child, name, depth + 1))
        else:
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    what = "a NUL character (\\u0000)" if found.group() == "\x00" else "an unpaired surrogate"
    raise ValidationFailed(
        f"`{where}` contains {what}, which cannot be stored; remove it",
        field=_field(where),
        rule="storable_text",
    )


def _field(where: str) -> str:
    return where.removeprefix("$").removeprefix(".") or "$"


def in_batch(exc: DomainError, index: int) -> DomainError:
    """The same refusal, saying which element of a batch it is about (`[2].count`)."""
    field = f"[{index}].{exc.field}" if exc.field and exc.field != "$" else f"[{index}]"
    refined = type(exc)(f"element {index} of the batch: {exc.message}", field=field, rule=exc.rule)
    return refined
