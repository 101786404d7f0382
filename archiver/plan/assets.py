"""Collect: one Asset per origin across all articles, every sighting merged in."""

from __future__ import annotations

import functools
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from archiver.dates import article_date, iso
from archiver.models import ArticleScan, Asset, Citation, Kind, stronger_kind


@dataclass
class _Acc:
    origin: str
    kind: Kind
    # Ordered sets (dicts), not lists: one reference with 50,000 alternates (a srcset of
    # 50,000 candidates) or places must not cost 50,000 squared.
    proxies: dict[str, None] = field(default_factory=dict)
    alternates: dict[str, None] = field(default_factory=dict)
    urls: dict[str, None] = field(default_factory=dict)
    citations: dict[str, dict[str, None]] = field(default_factory=dict)
    dates: dict[str, str | None] = field(default_factory=dict)


def _add(items: dict[str, None], value: str | None) -> None:
    if value:
        items[value] = None  # a key seen before keeps its place


@functools.lru_cache(maxsize=4096)
def _iso_date(value: str | None) -> str | None:
    """An article's front-matter date as records keep it (articles often share one)."""
    published = article_date(value)
    return iso(published) if published is not None else None


def collect_assets(scans: Iterable[ArticleScan],
                   only: Container[str] | None = None) -> list[Asset]:
    """One Asset per origin across all articles, in first-seen order, with every proxy route,
    alternate, written URL and citing article (with its date, ISO 8601 UTC) merged in; of the
    origins in ``only`` alone when given."""
    accs: dict[str, _Acc] = {}
    for scan in scans:
        date = _iso_date(scan.date)
        for ref in scan.references:
            if only is not None and ref.origin not in only:
                continue
            acc = accs.get(ref.origin)
            if acc is None:
                acc = accs[ref.origin] = _Acc(ref.origin, ref.kind)
            else:
                acc.kind = stronger_kind(acc.kind, ref.kind)
            _add(acc.proxies, ref.proxy)
            _add(acc.urls, ref.url)
            for alt in ref.alternates:
                if alt != ref.origin:
                    _add(acc.alternates, alt)
            where = acc.citations.setdefault(ref.article, {})
            acc.dates[ref.article] = acc.dates.get(ref.article) or date
            for place in ref.where:
                _add(where, place)
    return [
        Asset(
            origin=a.origin,
            kind=a.kind,
            proxies=tuple(a.proxies),
            alternates=tuple(a.alternates),
            urls=tuple(a.urls),
            citations=tuple(Citation(art, tuple(w), a.dates.get(art))
                            for art, w in a.citations.items()),
        )
        for a in accs.values()
    ]
