"""Instants as text: RFC 3339 in UTC with a ``Z``, the one form minimo shows and stores as text."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(value: datetime) -> str:
    """``2026-11-25T14:30:00.123456Z``: the instant in UTC (an aware datetime is converted)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_text_or_none(value: datetime | None) -> str | None:
    """:func:`utc_text`, with None for "never" (a session not closed, a key not revoked)."""
    return None if value is None else utc_text(value)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime in UTC (no zone: UTC).

    ValueError for anything else, including instants that exist only in their own zone
    (``0001-01-01T00:00+14:00`` is before year 1 in UTC; converting it overflows).
    """
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text} is out of range in UTC") from None
