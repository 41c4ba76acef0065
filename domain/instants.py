"""The one UTC rule: a timestamp without a zone is UTC; stored instants are fixed-width text
(2024-05-01T12:00:00.000000Z) so that comparing the text compares the instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from domain.errors import ValidationFailed


def assume_utc(moment: datetime) -> datetime:
    """`moment` itself, or, when it has no zone, the same wall time in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def instant(value: datetime | date | str, *, end: bool = False, field: str = "since") -> datetime:
    """A UTC instant from a datetime or ISO text; a bare date is its first (or, with `end`,
    its last) microsecond. Naive values are taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            parse = date.fromisoformat if len(text) == 10 else datetime.fromisoformat
            value = parse(text)
        except ValueError as exc:
            raise ValidationFailed(
                f"{value!r} is not an ISO 8601 date or timestamp (e.g. 2024-05-01 or "
                "2024-05-01T12:00:00Z)",
                field=field,
                rule="timestamp",
            ) from exc
    if not isinstance(value, datetime):
        day = datetime.combine(value, time.min, tzinfo=UTC)
        return day + timedelta(days=1, microseconds=-1) if end else day
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationFailed(
            f"`{field}` {value.isoformat()} is outside the years 1-9999 in UTC",
            field=field,
            rule="timestamp",
        ) from exc


def iso_utc(value: datetime) -> str:
    """Fixed width, so stored timestamps compare as text: 2024-05-01T12:00:00.000000Z."""
    utc = instant(value)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")
