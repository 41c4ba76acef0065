"""The cohort index (`ol_patients`): filters on any column, sort by any column, cursor pages.

Shared by the stored views and by whatever applies the index's filters to a computed row
(`projections.cohort_subjects`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import ValidationFailed
from domain.instants import iso_utc
from domain.ledger.db import PostgresDb, SqliteDb
from domain.synthetic import SYNTHETIC_ID_PREFIXES
from projections import readmodels
from projections.cohort_filters import EQUALITY_NAMES, RANGE_COLUMNS
from projections.views_schema import TRACKING_NAME

PATIENT_COLUMNS = tuple(readmodels.PatientRow.__struct_fields__)


def query_patients(
    db: SqliteDb | PostgresDb,
    head: Callable[[], int],
    *,
    filters: dict[str, Any] | None = None,
    sort: str = "patient_id",
    limit: int = 50,
    cursor: str | None = None,
    count: bool = False,
) -> readmodels.PatientPage:
    """The cohort index: filter on any column, sort by any column, page with a cursor.

    `total` (how many rows match) is counted only when asked: over a large cohort the
    count costs far more than the page itself."""
    where, params = _where(filters or {})
    descending = sort.startswith("-")
    column = sort.removeprefix("-")
    if column not in PATIENT_COLUMNS:
        raise ValidationFailed(
            f"`sort` must be one of {', '.join(PATIENT_COLUMNS)} (prefix - for descending)",
            field="sort",
            rule="sort_column",
        )
    if not 1 <= limit <= 1000:
        raise ValidationFailed("`limit` must be 1 to 1000", field="limit", rule="range")
    offset = _decode_cursor(cursor)
    direction = "DESC" if descending else "ASC"
    # Missing values sort as the smallest, on both databases (SQLite's own order), and the
    # plain column order lets the (column, patient_id) index serve the sort.
    nulls = ""
    if db.is_postgres:
        nulls = " NULLS LAST" if descending else " NULLS FIRST"
    order = f"{column} {direction}{nulls}, patient_id {direction}"
    if column == "patient_id":
        order = f"patient_id {direction}"
    with db.transaction() as cur:
        cur.execute("SELECT position FROM ol_tracking WHERE name = ?", (TRACKING_NAME,))
        tracked = cur.fetchone()
        position = int(tracked[0]) if tracked else 0
        total = None
        if count:
            cur.execute(f"SELECT COUNT(*) FROM ol_patients{where}", params)
            total = int(cur.fetchone()[0])
        cur.execute(
            f"SELECT {', '.join(PATIENT_COLUMNS)} FROM ol_patients{where} "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit + 1, offset],
        )
        rows = cur.fetchall()
    more = len(rows) > limit
    return readmodels.PatientPage(
        patients=[_patient_row(r) for r in rows[:limit]],
        next_cursor=_encode_cursor(offset + limit) if more else None,
        total=total,
        position=position,
        lag=max(0, head() - position),
    )


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "synthetic":
            clauses.append(_synthetic_clause(bool(value), params))
            continue
        if key in EQUALITY_NAMES:
            values = value if isinstance(value, list | tuple) else [value]
            if any("\x00" in str(v) for v in values):
                raise ValidationFailed(f"`{key}` contains a NUL character", field=key, rule="text")
            clauses.append(f"{key} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
            continue
        column, _, bound = key.rpartition("_")
        if column in RANGE_COLUMNS and bound in ("min", "max"):
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValidationFailed(f"`{key}` is out of range", field=key, rule="range")
            clauses.append(f"{column} {'>=' if bound == 'min' else '<='} ?")
            params.append(_iso(value) if isinstance(value, datetime) else value)
            continue
        raise ValidationFailed(
            f"unknown filter {key!r}: use synthetic, one of {', '.join(EQUALITY_NAMES)} or "
            f"{', '.join(c + '_min/_max' for c in RANGE_COLUMNS)}",
            field=key,
            rule="filter",
        )
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _synthetic_clause(synthetic: bool, params: list[Any]) -> str:
    """Synthetic patients by their reserved id prefixes (`domain.synthetic`)."""
    tests = []
    for prefix in SYNTHETIC_ID_PREFIXES:
        tests.append("substr(patient_id, 1, ?) = ?")
        params.extend([len(prefix), prefix])
    either = " OR ".join(tests)
    return f"({either})" if synthetic else f"NOT ({either})"


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    """The offset of a cursor `_encode_cursor` made, and nothing else: anything this server
    could not have handed out (other text, another encoding, an offset no query can reach)."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        text = ""
    digits = text.removeprefix("o:")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        digits = "0"  # not an offset: refused below
    offset = int(digits)
    if offset < 1 or _encode_cursor(offset) != cursor:
        raise ValidationFailed(
            "`cursor` is not one this server handed out: pass a page's `next_cursor` as it is",
            field="cursor",
            rule="cursor",
        )
    return offset


def _column_safe(values: Sequence[Any]) -> list[Any]:
    """Values a column of either database can hold. The ledger refuses NUL in text now, but
    an older version stored some; the views show it as U+FFFD rather than refuse the event
    (PostgreSQL text cannot hold NUL). Documents (JSON) keep it, escaped."""
    return [
        v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in values
    ]


def _patient_row(row: Sequence[Any]) -> readmodels.PatientRow:
    data = dict(zip(PATIENT_COLUMNS, row, strict=True))
    return msgspec.convert(data, readmodels.PatientRow, strict=False)


def _iso(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so stored instants compare correctly as strings."""
    return None if value is None else iso_utc(value)
