"""Path, query and header parameters shared by the routes, and the ETag / If-Match handling.

A patient's ETag is its stream version, `"<version>"` (a strong validator: the same version
always yields the same representation of the same URL). `If-Match` on an append is the
optimistic-concurrency precondition; `If-None-Match` on a read answers 304 when nothing changed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from uuid import UUID

from litestar.params import HeaderParameter, PathParameter, QueryParameter

from domain.errors import ValidationFailed
from domain.instants import assume_utc
from projections.ctc import RuleName

PATIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
# The largest integer SQLite and PostgreSQL store (BIGINT): beyond it a query cannot be run.
MAX_BIGINT = 2**63 - 1

PatientIdPath = Annotated[
    str,
    PathParameter(
        description="Pseudonymous patient id: 1-64 of A-Z a-z 0-9 . _ -",
        pattern=PATIENT_ID_PATTERN,
    ),
]
EventIdPath = Annotated[UUID, PathParameter(description="The `event_id` of an event")]
AsOf = Annotated[
    datetime | None,
    QueryParameter(
        description="As known at this instant (RFC 3339; without an offset, UTC): events "
        "recorded later are left out",
    ),
]
Upto = Annotated[
    int | None,
    QueryParameter(ge=1, le=MAX_BIGINT, description="Up to this stream version (inclusive)"),
]
Rule = Annotated[
    RuleName | None,
    QueryParameter(
        description="CTC positivity rule (CTCs per 7.5 mL): ge1, ge3 or ge5; default from "
        "ONCOLEDGER_CTC_RULE, else ge1",
    ),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='Record only if the stream is still at this version, e.g. `"7"` (the '
        "ETag of a patient read); otherwise 412 and nothing is stored",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        description="The ETag of an earlier read: 304 with no body while the stream is unchanged",
    ),
]

_VERSION_TAG = re.compile(r'^"?(\d{1,18})"?$')


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` header requires; None when there is no precondition (`*`)."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _VERSION_TAG.match(if_match.strip())
    if match is None:
        raise ValidationFailed(
            f'`If-Match` must be one stream version in quotes, like "7" (got {if_match!r})',
            field="If-Match",
            rule="if_match",
        )
    return int(match.group(1))


def not_modified(if_none_match: str | None, version: int) -> bool:
    """True when `If-None-Match` lists the current ETag (weak tags compared weakly, RFC 9110)."""
    if if_none_match is None or version == 0:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag(version) in tags


def utc(value: datetime | None) -> datetime | None:
    """A timestamp given without an offset is read as UTC."""
    return None if value is None else assume_utc(value)
