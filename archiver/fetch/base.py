"""The Fetcher seam: what every fetcher takes, returns and records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from archiver.models import Asset, Attempt


@dataclass
class Blob:
    """Bytes fetched into a (spooled) temporary file, with their digest and sniffed type."""

    file: IO[bytes]
    sha256: str
    size: int
    media_type: str
    ext: str

    def close(self) -> None:
        self.file.close()


@dataclass
class Fetched:
    """A successful fetch: the media itself, how it was reached, facts and related objects.

    ``related`` maps a name (``info``, ``thumbnail``) to a Blob stored beside the media.
    ``facts`` holds width, height, frames, duration and fetcher-specific facts (extractor,
    format) that the record keeps. ``exchange`` holds the HTTP request and response headers of
    the fetch that produced ``blob`` (see exchange.py), None when the fetcher cannot tell.
    """

    blob: Blob
    route: str
    url: str
    http_status: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    related: dict[str, Blob] = field(default_factory=dict)
    exchange: dict[str, Any] | None = None

    def close(self) -> None:
        self.blob.close()
        for blob in self.related.values():
            blob.close()


class Fetcher(Protocol):
    """Fetches one asset. ``attempts`` is appended to as routes are tried, so that a failure
    still leaves its history; on failure the last error (from archiver.errors) is raised."""

    name: str
    example_urls: tuple[str, ...]

    def matches(self, asset: Asset) -> bool: ...

    def fetch(self, asset: Asset, attempts: list[Attempt]) -> Fetched: ...

    def close(self) -> None: ...
