"""The access log: who read which patient's clinical data, when, through which channel.

Every read of clinical data is one row, appended to a hash chain of its own (the same
construction as a patient's stream, SPEC §6): `hash` is SHA-256 over the row's canonical JSON
(sorted keys, without `hash`) followed by `prev_hash`, the previous row's hash (64 zeros for the
first). Rows live beside the ledger (`open_db(config, side="ledger")`), never in the clinical
streams, so reading never changes a patient's version, and are never rebuilt.

Appends stay linear under concurrency: the append takes the table's write lock before it reads
the head (SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`,
which excludes other appenders but not readers), and `seq` is the primary key, so a second row
with the same place in the chain could not be stored even if the locking were bypassed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from msgspec import Struct

from domain.errors import ValidationFailed
from domain.instants import instant, iso_utc
from domain.integrity import record_hash, verify_sequence
from domain.ledger.db import LedgerStore
from domain.patient import GENESIS_HASH

CHANNELS: tuple[str, ...] = ("api", "cli", "web")
# What adapters name as `resource`; others are accepted (1-64 of a-z 0-9 . _ -).
RESOURCES: tuple[str, ...] = (
    "patient",
    "patients",
    "history",
    "replay",
    "timeline",
    "stage",
    "ctc",
    "response",
    "survival",
    "export",
    "audit",
    "access-log",
    "verify",
    "fhir",
    "chart",
    "patient-page",
)
MAX_LIMIT = 1000
_VERIFY_BATCH = 5000
_RESOURCE = re.compile(r"^[a-z0-9._-]{1,64}$")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ol_access_log (
        seq BIGINT PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        channel TEXT NOT NULL,
        resource TEXT NOT NULL,
        patient_id TEXT,
        address TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ol_access_log_patient ON ol_access_log (patient_id, seq)",
    "CREATE INDEX IF NOT EXISTS ol_access_log_actor ON ol_access_log (actor, seq)",
    "CREATE INDEX IF NOT EXISTS ol_access_log_at ON ol_access_log (at)",
)
_COLUMNS = ("seq", "at", "actor", "channel", "resource", "patient_id", "address", "prev_hash")
_SELECT = f"SELECT {', '.join(_COLUMNS)}, hash FROM ol_access_log"


class AccessEntry(Struct, frozen=True, kw_only=True):
    """One read of clinical data: who, which patient (None: cohort-wide), what, how, when."""

    seq: int
    at: datetime
    actor: str
    channel: str
    resource: str
    patient_id: str | None
    address: str | None
    prev_hash: str
    hash: str


class AccessPage(Struct, frozen=True, kw_only=True):
    entries: list[AccessEntry]
    # The `after` value for the next page; None when this page is the last.
    next_cursor: int | None


class AccessLogReport(Struct, frozen=True, kw_only=True):
    """The outcome of recomputing the access-log chain."""

    ok: bool
    # Rows checked, and the hash of the last row whose chain is intact.
    entries: int
    head: str
    # The first seq where the chain breaks (a changed, missing or moved row) and why.
    first_broken_seq: int | None = None
    reason: str | None = None


# -- the log ----------------------------------------------------------------------------------


def row_hash(row: dict[str, Any]) -> str:
    """SPEC §6 applied to an access-log row: sha256(canonical JSON without `hash` + prev_hash)."""
    return record_hash(row)


class AccessLog(LedgerStore):
    """The append-only, hash-chained log of clinical reads (table `ol_access_log`)."""

    SCHEMA = SCHEMA
    LOCK_KEY = 7316002

    # -- writing ---------------------------------------------------------------------------------

    def record(
        self,
        actor: str,
        *,
        channel: str,
        resource: str,
        patient_id: str | None = None,
        address: str | None = None,
    ) -> AccessEntry:
        """Append one read to the chain, in one short transaction; return the stored row."""
        _check(actor, channel, resource, patient_id, address)
        with self.db.transaction(write=True) as cur:
            if self.db.is_postgres:
                # One batch, no round trip of its own. The commit does not wait for the WAL
                # flush: the same durability as the SQLite side (WAL, synchronous=NORMAL), safe
                # against an application crash; a database-server crash may lose the last
                # fraction of a second of rows, leaving a shorter chain, never a broken one.
                cur.execute(
                    "SET LOCAL synchronous_commit = off; "
                    "LOCK TABLE ol_access_log IN SHARE ROW EXCLUSIVE MODE"
                )
            cur.execute("SELECT seq, hash FROM ol_access_log ORDER BY seq DESC LIMIT 1")
            last = cur.fetchone()
            seq, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS_HASH)
            # Taken under the lock, so `at` never goes backwards along the chain.
            row: dict[str, Any] = {
                "seq": seq,
                "at": iso_utc(datetime.now(UTC)),
                "actor": actor,
                "channel": channel,
                "resource": resource,
                "patient_id": patient_id,
                "address": address,
                "prev_hash": prev_hash,
            }
            row["hash"] = row_hash(row)
            cur.execute(
                f"INSERT INTO ol_access_log ({', '.join(_COLUMNS)}, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [row[c] for c in (*_COLUMNS, "hash")],
            )
        return _entry(tuple(row[c] for c in (*_COLUMNS, "hash")))

    # -- reading ---------------------------------------------------------------------------------

    def query(
        self,
        patient_id: str | None = None,
        actor: str | None = None,
        since: datetime | date | str | None = None,
        after: int | None = None,
        limit: int = 100,
        *,
        until: datetime | date | str | None = None,
        resource: str | None = None,
    ) -> AccessPage:
        """Rows in chain order, filtered; keyset-paginated by `seq` (`after`, `limit`)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationFailed(f"`limit` must be 1 to {MAX_LIMIT}", field="limit", rule="range")
        if after is not None and after < 0:
            raise ValidationFailed("`after` must be 0 or more", field="after", rule="range")
        clauses = ["seq > ?"]
        params: list[Any] = [after or 0]
        for column, value in (("patient_id", patient_id), ("actor", actor), ("resource", resource)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(iso_utc(instant(since)))
        if until is not None:
            clauses.append("at <= ?")
            params.append(iso_utc(instant(until, end=True, field="until")))
        with self.db.transaction() as cur:
            cur.execute(
                f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?",
                [*params, limit + 1],
            )
            rows = cur.fetchall()
        entries = [_entry(r) for r in rows[:limit]]
        more = len(rows) > limit
        return AccessPage(entries=entries, next_cursor=entries[-1].seq if more else None)

    def head(self) -> tuple[int, str]:
        """(number of rows, hash of the last row); (0, 64 zeros) when empty."""
        with self.db.transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM ol_access_log")
            count = int(cur.fetchone()[0])
            cur.execute("SELECT hash FROM ol_access_log ORDER BY seq DESC LIMIT 1")
            last = cur.fetchone()
        return count, str(last[0]) if last else GENESIS_HASH

    def verify(self, *, as_of: datetime | None = None) -> AccessLogReport:
        """Recompute the chain from the stored rows (those at or before `as_of`, if given).

        A changed row fails its hash; a deleted or moved row breaks the seq sequence or the
        prev_hash link. Rows removed from the end leave an intact, shorter chain: only a digest
        kept elsewhere (`OncoLedger.digest`) shows that.
        """
        report = verify_sequence(
            dict(zip((*_COLUMNS, "hash"), row, strict=True)) for row in self._rows(as_of)
        )
        return AccessLogReport(
            ok=report.ok,
            entries=report.entries,
            head=report.head,
            first_broken_seq=report.first_broken,
            reason=report.reason,
        )

    def _rows(self, as_of: datetime | None) -> Iterator[tuple[Any, ...]]:
        cutoff = [iso_utc(as_of)] if as_of is not None else []
        where = " AND at <= ?" if as_of is not None else ""
        after: int | None = None
        while True:
            # The first batch starts at the lowest seq stored, whatever it is.
            keyset = "seq > ?" if after is not None else "1 = 1"
            with self.db.transaction() as cur:
                cur.execute(
                    f"{_SELECT} WHERE {keyset}{where} ORDER BY seq LIMIT ?",
                    [*([after] if after is not None else []), *cutoff, _VERIFY_BATCH],
                )
                batch = cur.fetchall()
            if not batch:
                return
            yield from (tuple(r) for r in batch)
            after = int(batch[-1][0])


def _check(
    actor: str, channel: str, resource: str, patient_id: str | None, address: str | None
) -> None:
    if not actor or len(actor) > 200:
        raise ValidationFailed("`actor` must be 1 to 200 characters", field="actor")
    if channel not in CHANNELS:
        raise ValidationFailed(
            f"`channel` must be one of {', '.join(CHANNELS)}", field="channel", rule="channel"
        )
    if not _RESOURCE.match(resource):
        raise ValidationFailed(
            "`resource` must be 1-64 of a-z 0-9 . _ - (e.g. " + ", ".join(RESOURCES[:4]) + ")",
            field="resource",
        )
    if patient_id is not None and not 1 <= len(patient_id) <= 64:
        raise ValidationFailed("`patient_id` must be 1 to 64 characters", field="patient_id")
    if address is not None and len(address) > 200:
        raise ValidationFailed("`address` must be at most 200 characters", field="address")


def _entry(row: tuple[Any, ...] | Any) -> AccessEntry:
    seq, at, actor, channel, resource, patient_id, address, prev_hash, hash_ = row
    return AccessEntry(
        seq=int(seq),
        at=datetime.fromisoformat(str(at)),
        actor=str(actor),
        channel=str(channel),
        resource=str(resource),
        patient_id=patient_id,
        address=address,
        prev_hash=str(prev_hash),
        hash=str(hash_),
    )


__all__ = [
    "CHANNELS",
    "RESOURCES",
    "AccessEntry",
    "AccessLog",
    "AccessLogReport",
    "AccessPage",
    "instant",
    "iso_utc",
]
