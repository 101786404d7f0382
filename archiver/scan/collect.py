"""Turn raw findings into one Reference per media origin, and the rest into Skipped.

Extractors (front matter, HTML, markdown) report ``Found`` values exactly as written; this
module is the one place that decides what a value means:

- ``context="media"``: a source attribute; any http(s) URL is a reference.
- ``context="link"``: ``a[href]``, ``data-*`` and markdown links; a reference only when it
  names a media file (by extension) or a v.qq.com video, otherwise silently ignored.
- ``context="player"``: an ``iframe[src]``; v.qq.com is a video, a known unfetchable player
  is skipped as ``unsupported-video``, anything else (a WordPress embed) is ignored.

Merging: one Reference per origin, every place in ``where``, the first ``url`` as written, the
first proxy prefix seen (a proxied sighting wins over an unproxied one), alternates unioned.
A GIF with still images (ZAKER ``data-gif-url``) carries the stills as alternates, and the
stills' proxy when the GIF URL itself was not proxied: the site evidently serves through it.
A still that also stands alone elsewhere (front-matter ``headimg``) is still a separate image
reference there: that place shows the still, and archiving it keeps the article renderable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from archiver import urls
from archiver.models import Kind, Reference, Skipped, stronger_kind
from archiver.settings import ScanSettings
from archiver.urls.escapes import percent_escapes

Context = Literal["media", "link", "player"]

@dataclass(frozen=True, slots=True)
class Found:
    """One URL-like value an extractor saw, before normalisation."""

    where: str
    value: str
    hint: str | None = None
    context: Context = "media"
    stills: tuple[str, ...] = ()  # for a GIF: its still images, as written
    entities: bool = True  # False when the parser already decoded HTML entities


@dataclass(slots=True)
class _Entry:
    where: list[str]
    kind: Kind
    url: str
    proxy: str | None
    alternates: list[str] = field(default_factory=list)


class Collector:
    """Accumulates findings of one article; ``references()`` gives the merged result."""

    def __init__(self, article: str, settings: ScanSettings) -> None:
        self.article = article
        self.settings = settings
        self._entries: dict[str, _Entry] = {}
        self._skipped: list[Skipped] = []
        # The same URL is usually written 2-4 times per article (src, data-original, headimg,
        # thumbnail); normalising it once per article is a third of the scan's time.
        self._memo: dict[tuple[str, bool], urls.Normal | urls.Rejected | None] = {}

    def _normalise(self, value: str, entities: bool) -> urls.Normal | urls.Rejected | None:
        key = (value, entities)
        if key not in self._memo:
            self._memo[key] = urls.normalise(value, self.settings, entities=entities)
        return self._memo[key]

    def add(self, found: Found) -> None:
        result = self._normalise(found.value, found.entities)
        if result is None:
            return
        if isinstance(result, urls.Rejected):
            if urls.is_archived_copy(found.value, self.settings.archive_bases):
                self._skip(found, urls.ARCHIVED_COPY)  # a file:// or site-path copy
            elif found.context == "media" or _looks_like_media(found.value):
                self._skip(found, result.reason)
            return
        if urls.is_archived_copy(result.origin, self.settings.archive_bases):
            self._skip(found, urls.ARCHIVED_COPY)  # rewritten already: not new media
            return
        origin = urls.canonical_video(result.origin) or result.origin
        if found.context == "player":
            if origin.startswith("https://v.qq.com/"):
                self._merge(found, origin, result.proxy, "video", ())
            elif urls.on_hosts(origin, self.settings.unsupported_video_hosts):
                self._skip(found, urls.UNSUPPORTED_VIDEO)
            return
        if found.context == "link" and not urls.is_media_url(origin):
            return
        stills: list[str] = []
        proxy = result.proxy
        for still in found.stills:
            normal = self._normalise(still, found.entities)
            if isinstance(normal, urls.Normal) and normal.origin != origin:
                stills.append(normal.origin)
                proxy = proxy or normal.proxy
        self._merge(found, origin, proxy, urls.kind_of(origin, found.hint), stills)

    def _merge(
        self, found: Found, origin: str, proxy: str | None, kind: Kind, alternates: list[str]
        | tuple[str, ...]
    ) -> None:
        entry = self._entries.get(origin)
        if entry is None:
            entry = _Entry([found.where], kind, found.value.strip(), proxy)
            self._entries[origin] = entry
        else:
            if found.where not in entry.where:
                entry.where.append(found.where)
            entry.kind = stronger_kind(entry.kind, kind)
            entry.proxy = entry.proxy or proxy
        for alternate in alternates:
            if alternate not in entry.alternates:
                entry.alternates.append(alternate)

    def _skip(self, found: Found, reason: str) -> None:
        value = found.value.strip()
        if len(value) > 200:  # data: URIs can be megabytes; the reason is what matters
            value = value[:200] + "…"
        self._skipped.append(Skipped(self.article, found.where, percent_escapes(value), reason))

    def references(self) -> tuple[Reference, ...]:
        return tuple(
            Reference(
                article=self.article,
                where=tuple(e.where),
                kind=e.kind,
                url=percent_escapes(e.url),  # JSON-safe; the bytes stay visible
                origin=origin,
                proxy=e.proxy,
                alternates=tuple(a for a in e.alternates if a != origin),
            )
            for origin, e in self._entries.items()
        )

    def skipped(self) -> tuple[Skipped, ...]:
        return tuple(self._skipped)


def _looks_like_media(value: str) -> bool:
    """A relative or odd-scheme link counts as skipped only when it names a media file."""
    return urls.extension(value.strip()) in urls.MEDIA_EXTENSIONS
