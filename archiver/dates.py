"""Times as archiver reads them: ISO 8601 (records, options) and article dates (front matter
``date``: RFC 2822 as RSS writes it, or ISO 8601). Every time is an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC); None if it does not parse."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def article_date(value: Any) -> datetime | None:
    """The front matter's date (RFC 2822 or ISO 8601) in UTC, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    parsed = parse_time(value)
    if parsed is not None:
        return parsed
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso(when: datetime) -> str:
    """``2022-01-13T02:14:00Z``: the form records keep."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
