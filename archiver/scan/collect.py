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

Originals behind thumbnails (``Group``): a link to an image around a thumbnail (``<a
href=big.jpg><img src=thumb.jpg></a>``, ``[![](thumb)](big)``, or a ``[[scan.links]]``
wrapper page whose query carries the image), or an ``<img>`` attribute that holds the original
(``data-original-src``, ``zoomfile``, ...). The original is the reference and the thumbnail
its alternate, as for a GIF and its stills; the thumbnail is not a reference of its own.
A link's wrapper is seen through first, so ``.../GoToLink?url=<page>`` is a link to the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from archiver import urls
from archiver.models import Kind, Reference, Skipped, filled_at_once, stronger_kind
from archiver.settings import ScanSettings
from archiver.urls.escapes import percent_escapes

Context = Literal["media", "link", "player"]

@filled_at_once  # built several times an article: quicker than slots
@dataclass(frozen=True)
class Found:
    """One URL-like value an extractor saw, before normalisation."""

    where: str
    value: str
    hint: str | None = None
    context: Context = "media"
    stills: tuple[str, ...] = ()  # for a GIF: its still images, as written
    entities: bool = True  # False when the parser already decoded HTML entities


@filled_at_once
@dataclass(frozen=True)
class Group:
    """One image written several ways: ``originals`` (the best first: a link to the full-size
    image, an attribute naming the original) and ``copies`` (the thumbnail shown, lazy-loader
    copies). The first original that resolves to an image is the reference, every other
    distinct origin of the group its alternate. Originals before it, and every found when
    none resolves, count on their own."""

    originals: tuple[Found, ...]
    copies: tuple[Found, ...] = ()


# The same URL is written 2-4 times per article (src, data-original, headimg, thumbnail), and
# some in many articles (a shared image, a logo): each value is normalised once (and a link
# seen through its wrapper, an origin checked for an archived copy once), for every article
# scanned with the same settings; that was half of the scan's time. Bounded against hostile
# input: long values (data: URIs) are not kept, and a full memo starts afresh.
_MEMO_VALUES = 8192
_MEMO_VALUE_CHARS = 512


@dataclass(slots=True)
class _Memo:
    normal: dict[tuple[str, bool], urls.Normal | urls.Rejected | None] = field(
        default_factory=dict)
    inner: dict[str, str | None] = field(default_factory=dict)  # unwrap_link
    copy: dict[str, bool] = field(default_factory=dict)  # is_archived_copy
    kind: dict[tuple[str, str | None], Kind] = field(default_factory=dict)  # kind_of
    media: dict[str, bool] = field(default_factory=dict)  # is_media_url


_memos: dict[int, tuple[ScanSettings, tuple[object, ...], _Memo]] = {}


def _shared_memo(settings: ScanSettings, bases: tuple[str, ...]) -> _Memo:
    """The memo of ``settings`` (kept with it, so that its id is not reused while cached; the
    fields the memo depends on are compared too, as their lists could change in place)."""
    fields = (settings.default_scheme, settings.base_url, tuple(settings.proxies),
              tuple(settings.links), bases)
    entry = _memos.get(id(settings))
    if entry is None or entry[0] is not settings or entry[1] != fields:
        if len(_memos) >= 8:
            _memos.clear()
        entry = _memos[id(settings)] = (settings, fields, _Memo())
    return entry[2]


def _keep(memo: dict[Any, Any], key: object, text: str, value: object) -> None:
    if len(text) <= _MEMO_VALUE_CHARS:
        if len(memo) >= _MEMO_VALUES:
            memo.clear()
        memo[key] = value


@dataclass(slots=True)
class _Entry:
    where: list[str]
    kind: Kind
    url: str
    proxy: str | None
    alternates: list[str] = field(default_factory=list)
    places: set[str] = field(default_factory=set)  # ``where`` as a set: one image written
    # in 50,000 places (a hostile front matter list) must not cost 50,000 squared
    others: set[str] = field(default_factory=set)  # ``alternates`` as a set, as ``places``:
    # a srcset of 50,000 candidates is one reference with 50,000 alternates


class Collector:
    """Accumulates findings of one article; ``references()`` gives the merged result."""

    def __init__(self, article: str, settings: ScanSettings) -> None:
        self.article = article
        self.settings = settings
        self._bases = settings.archive_bases  # a pydantic private attribute: slow to read
        self._entries: dict[str, _Entry] = {}
        self._skipped: list[Skipped] = []
        self._memo = _shared_memo(settings, self._bases)

    def _normalise(self, value: str, entities: bool) -> urls.Normal | urls.Rejected | None:
        key = (value, entities)
        memo = self._memo.normal
        if key in memo:
            return memo[key]
        result = urls.normalise(value, self.settings, entities=entities)
        _keep(memo, key, value, result)
        return result

    def _kind(self, origin: str, hint: str | None) -> Kind:
        memo = self._memo.kind
        key = (origin, hint)
        if key in memo:
            return memo[key]
        kind = urls.kind_of(origin, hint)
        _keep(memo, key, origin, kind)
        return kind

    def _media(self, origin: str) -> bool:
        memo = self._memo.media
        if origin in memo:
            return memo[origin]
        answer = urls.is_media_url(origin)
        _keep(memo, origin, origin, answer)
        return answer

    def _archived(self, url: str) -> bool:
        memo = self._memo.copy
        if url in memo:
            return memo[url]
        answer = urls.is_archived_copy(url, self._bases)
        _keep(memo, url, url, answer)
        return answer

    def add(self, found: Found | Group) -> None:
        if isinstance(found, Group):
            self._add_group(found)
            return
        result = self._normalise(found.value, found.entities)
        if result is None:
            return
        if isinstance(result, urls.Rejected):
            if self._archived(found.value):
                self._skip(found, urls.ARCHIVED_COPY)  # a file:// or site-path copy
            elif found.context == "media" or _looks_like_media(found.value):
                self._skip(found, result.reason)
            return
        if found.context == "link":
            result = self._through_wrapper(result)
        if self._archived(result.origin):
            self._skip(found, urls.ARCHIVED_COPY)  # rewritten already: not new media
            return
        origin = urls.canonical_video(result.origin) or result.origin
        if found.context == "player":
            if origin.startswith("https://v.qq.com/"):
                self._merge(found, origin, result.proxy, "video", ())
            elif urls.on_hosts(origin, self.settings.unsupported_video_hosts):
                self._skip(found, urls.UNSUPPORTED_VIDEO)
            return
        if found.context == "link" and not self._media(origin):
            return
        stills: list[str] = []
        proxy = result.proxy
        for still in found.stills:
            normal = self._normalise(still, found.entities)
            if isinstance(normal, urls.Normal) and normal.origin != origin:
                stills.append(normal.origin)
                proxy = proxy or normal.proxy
        self._merge(found, origin, proxy, self._kind(origin, found.hint), stills)

    def _through_wrapper(self, result: urls.Normal) -> urls.Normal:
        """The URL a wrapped link carries (``[[scan.links]]``), else the link itself."""
        memo = self._memo.inner
        if result.origin in memo:
            inner = memo[result.origin]
        else:
            inner = urls.unwrap_link(result.origin, self.settings.links)
            _keep(memo, result.origin, result.origin, inner)
        if inner is None:
            return result
        normal = self._normalise(inner, False)
        return normal if isinstance(normal, urls.Normal) else result

    def _resolved(self, found: Found) -> str | None:
        """The origin ``found`` stands for (a link's wrapper seen through), if it has one."""
        result = self._normalise(found.value, found.entities)
        if not isinstance(result, urls.Normal):
            return None
        if found.context == "link":
            result = self._through_wrapper(result)
        return result.origin

    def _original(self, found: Found) -> str | None:
        """The origin ``found`` stands for when it can be the original of a Group: an image
        (a link only when it names an image file), not an archived copy."""
        origin = self._resolved(found)
        if origin is None or self._archived(origin):
            return None
        if found.context == "link":
            return origin if urls.extension(origin) in urls.IMAGE_EXTENSIONS else None
        if found.context == "media" and self._kind(origin, found.hint) != "video":
            return origin
        return None

    def _add_group(self, group: Group) -> None:
        for i, found in enumerate(group.originals):
            origin = self._original(found)
            if origin is None:
                self.add(found)
                continue
            same: list[Found] = []
            stills: list[str] = []
            for other in (*group.originals[i + 1:], *group.copies):
                if self._resolved(other) == origin:
                    same.append(other)
                else:
                    stills.append(other.value)
            self.add(replace(found, stills=(*found.stills, *stills)))
            for other in same:
                self.add(other)
            return
        for copy in group.copies:
            self.add(copy)

    def _merge(
        self, found: Found, origin: str, proxy: str | None, kind: Kind, alternates: list[str]
        | tuple[str, ...]
    ) -> None:
        entry = self._entries.get(origin)
        if entry is None:
            entry = _Entry([found.where], kind, found.value.strip(), proxy, places={found.where})
            self._entries[origin] = entry
        else:
            if found.where not in entry.places:
                entry.places.add(found.where)
                entry.where.append(found.where)
            entry.kind = stronger_kind(entry.kind, kind)
            entry.proxy = entry.proxy or proxy
        for alternate in alternates:
            if alternate not in entry.others:
                entry.others.add(alternate)
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
