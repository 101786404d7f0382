"""Which archived records an export takes, and when each was captured."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver.dates import parse_time
from archiver.models import Record


def captured_at(record: Record) -> datetime:
    """When the stored bytes were fetched: the successful attempt's start, else when the record
    was created (older records), else the epoch."""
    for attempt in reversed(record.attempts):
        if attempt.error is None and (at := parse_time(attempt.at)) is not None:
            return at
    return parse_time(record.created_at) or parse_time(record.updated_at) \
        or datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class Selection:
    """Archived records cited by an article matching one of ``articles`` (globs on article ids;
    none = every record) and captured within [``since``, ``until``)."""

    articles: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def admits_article(self, article: str) -> bool:
        return not self.articles or any(fnmatch.fnmatchcase(article, pattern)
                                        for pattern in self.articles)

    def admits(self, record: Record) -> bool:
        if record.status != "archived" or not record.key or not record.sha256:
            return False
        if self.articles and not any(self.admits_article(c.article) for c in record.citations):
            return False
        when = captured_at(record)
        if self.since is not None and when < self.since:
            return False
        return self.until is None or when < self.until


EVERYTHING = Selection()
