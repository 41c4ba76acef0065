"""Change audit (SPEC §4 **audit**) and the digest an outsider keeps (SPEC §6).

The audit lists stored events across all patients in recording order from the `ol_events`
table the views keep; filters (patient, actor, type, recorded_at range, corrections only) and
keyset pagination by `position` (the notification id) make it cheap at any depth.

`ledger_digest` is one SHA-256 over every stream head in patient-id order plus the access log's
head. The heads are the ones recomputed from the stored bytes, not the ones stored: a changed,
deleted or moved event anywhere in a stream, or a changed, deleted or moved access-log row,
changes the digest, and so does removing the latest event of a stream or the latest access row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import msgspec
from msgspec import Struct

from domain import events as ev
from domain.errors import NotFound, ValidationFailed
from domain.instants import instant, iso_utc
from domain.integrity import ChainChecker, Digest, digest_heads
from domain.ledger.access_log import AccessLog
from domain.ledger.application import Ledger
from domain.ledger.db import PostgresDb, SqliteDb

MAX_LIMIT = 1000
CORRECTION_TYPES: tuple[str, ...] = ("event_amended", "event_retracted")

# `recorded_at` in `ol_events` is ISO text ending in Z, with microseconds unless they are 0.
# Padded to a fixed width it compares as text; the bare column bounds keep the index usable.
_RECORDED_AT = (
    "(CASE WHEN length(recorded_at) = 20 "
    "THEN substr(recorded_at, 1, 19) || '.000000Z' ELSE recorded_at END)"
)
_AUDIT_COLUMNS = (
    "position",
    "recorded_at",
    "recorded_by",
    "source",
    "type",
    "patient_id",
    "version",
    "event_id",
    "target_event_id",
    "reason",
)


class AuditEntry(Struct, frozen=True, kw_only=True):
    """One stored event as the auditor sees it: who recorded what, when, where; for corrections
    the event corrected and why."""

    position: int
    recorded_at: datetime
    recorded_by: str
    source: str
    type: str
    patient_id: str
    version: int
    event_id: UUID
    target_event_id: UUID | None
    reason: str | None


class AuditPage(Struct, frozen=True, kw_only=True):
    entries: list[AuditEntry]
    # The `after` value for the next page; None when this page is the last.
    next_cursor: int | None


def query_audit(
    db: SqliteDb | PostgresDb,
    patient_id: str | None = None,
    *,
    actor: str | None = None,
    type: str | Sequence[str] | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    corrections: bool = False,
    after: int | None = None,
    limit: int = 100,
) -> AuditPage:
    """Stored events in recording order, filtered, keyset-paginated by `position`.

    `since` / `until` bound `recorded_at` inclusively (a bare date `until` covers its whole day);
    `corrections` keeps only `event_amended` / `event_retracted`; `type` is one event type or a
    list of them. A `patient_id` with no events at all is not found.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"`limit` must be 1 to {MAX_LIMIT}", field="limit", rule="range")
    if after is not None and after < 0:
        raise ValidationFailed("`after` must be 0 or more", field="after", rule="range")
    types = _types(type)
    if corrections:
        types = [t for t in types or CORRECTION_TYPES if t in CORRECTION_TYPES]
        if not types:
            return AuditPage(entries=[], next_cursor=None)
    clauses = ["position > ?"]
    params: list[Any] = [after or 0]
    if patient_id is not None:
        clauses.append("patient_id = ?")
        params.append(patient_id)
    if actor is not None:
        clauses.append("recorded_by = ?")
        params.append(actor)
    if types is not None:
        clauses.append(f"type IN ({', '.join('?' for _ in types)})")
        params.extend(types)
    if since is not None:
        bound = iso_utc(instant(since, field="since"))
        clauses.append(f"recorded_at >= ? AND {_RECORDED_AT} >= ?")
        params.extend([bound[:19], bound])
    if until is not None:
        bound = iso_utc(instant(until, end=True, field="until"))
        clauses.append(f"recorded_at <= ? AND {_RECORDED_AT} <= ?")
        params.extend([bound[:19] + "Z", bound])
    with db.transaction() as cur:
        cur.execute(
            f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM ol_events "
            f"WHERE {' AND '.join(clauses)} ORDER BY position LIMIT ?",
            [*params, limit + 1],
        )
        rows = cur.fetchall()
        if not rows and patient_id is not None:
            cur.execute("SELECT 1 FROM ol_events WHERE patient_id = ? LIMIT 1", (patient_id,))
            if cur.fetchone() is None:
                raise NotFound(f"patient {patient_id} is not registered", field="patient_id")
    entries = [_audit_entry(r) for r in rows[:limit]]
    more = len(rows) > limit
    return AuditPage(entries=entries, next_cursor=entries[-1].position if more else None)


def _types(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    types = [value] if isinstance(value, str) else list(value)
    for name in types:
        if name not in ev.EVENT_TYPES:
            raise ValidationFailed(
                f"unknown event type {name!r}: use one of {', '.join(ev.EVENT_TYPES)}",
                field="type",
                rule="event_type",
            )
    return types


def _audit_entry(row: Sequence[Any]) -> AuditEntry:
    position, recorded_at, actor, source, type_, patient_id, version, event_id, target, why = row
    return AuditEntry(
        position=int(position),
        recorded_at=datetime.fromisoformat(str(recorded_at)),
        recorded_by=str(actor),
        source=str(source),
        type=str(type_),
        patient_id=str(patient_id),
        version=int(version),
        event_id=UUID(str(event_id)),
        target_event_id=UUID(str(target)) if target else None,
        reason=why,
    )


# -- the digest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerDigest(Digest):
    """`sha256` covers every stream head (patient-id order, `id version hash` lines), exactly as
    SPEC §6 says, so reading never changes it. `sha256_with_access_log` adds the line
    `access-log <rows> <head hash>`, to prove the access log unaltered too. Keep them with
    `as_of`: `digest(as_of=...)` later recomputes both over what was recorded up to then."""

    sha256_with_access_log: str
    as_of: datetime
    access_log_entries: int
    access_log_head: str
    # Every chain recomputed without a break (a broken one is in the digest as `broken`).
    verified: bool


def ledger_digest(
    ledger: Ledger, access_log: AccessLog, *, as_of: datetime | date | str | None = None
) -> LedgerDigest:
    """SPEC §6 digest over the recomputed stream heads plus the access log's head.

    Without `as_of` it covers everything recorded up to now (the instant it is reported with).
    Events in flight while it is computed (recorded just before, committed just after) can make
    a later recomputation for the same instant differ; take digests at a quiet moment or give
    the instant a second in the past.
    """
    cutoff = instant(as_of, end=True, field="as_of") if as_of is not None else datetime.now(UTC)
    checker = ChainChecker()
    for patient_id, version, state in ledger.scan():
        data: Any
        try:
            data = state if isinstance(state, dict) else msgspec.json.decode(state)
        except msgspec.DecodeError:
            data = state
        if isinstance(data, dict):
            recorded = _recorded_at(data)
            if recorded is not None and recorded > cutoff:
                continue
        else:
            data = state
        checker.feed(patient_id, version, data)
    heads = checker.verified_heads()
    log = access_log.verify(as_of=cutoff)
    log_head = log.head if log.ok else f"broken-at-{log.first_broken_seq}"
    digest = digest_heads(heads)
    with_log = digest_heads(heads, extra=[f"access-log {log.entries} {log_head}"])
    return LedgerDigest(
        sha256=digest.sha256,
        sha256_with_access_log=with_log.sha256,
        patients=digest.patients,
        events=digest.events,
        as_of=cutoff,
        access_log_entries=log.entries,
        access_log_head=log_head,
        verified=checker.report.ok and log.ok,
    )


def _recorded_at(data: dict[str, Any]) -> datetime | None:
    value = data.get("recorded_at")
    if not isinstance(value, str):
        return None
    try:
        return instant(value)
    except ValidationFailed:
        return None


__all__ = [
    "CORRECTION_TYPES",
    "AuditEntry",
    "AuditPage",
    "LedgerDigest",
    "ledger_digest",
    "query_audit",
]
