"""A scan cache entry's value: the scan without its article id and path, as compact JSON
(``encode``), and the scan again from it (``decode_scan``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from archiver.models import KINDS, ArticleScan, Kind, Reference, Skipped


def encode(scan: ArticleScan) -> bytes:
    """A scan's value: compact JSON of everything but its article id and path."""
    doc = [[[list(r.where), r.kind, r.url, r.origin, r.proxy, list(r.alternates)]
            for r in scan.references],
           [[s.where, s.value, s.reason] for s in scan.skipped],
           list(scan.warnings), scan.title, scan.date]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass")


def _reference(article: str, where: list[str], kind: Kind, url: str, origin: str,
               proxy: str | None, alternates: list[str],
               one: Callable[[Any, Any], Any]) -> Reference:
    places, others = tuple(where), tuple(alternates)
    return Reference(article, one(places, places), one(kind, kind),
                     origin if url == origin else url, origin,
                     proxy if proxy is None else one(proxy, proxy), one(others, others))


def decode_scan(value: bytes, article: str, path: str,
                shared: dict[Any, Any] | None = None) -> ArticleScan | None:
    """The scan a value holds, for ``article`` at ``path``; None when it does not decode.
    Values many references repeat (their kind, places, proxy, alternates) are taken from
    ``shared`` (one object each across the scans decoded with it), and a URL written as its
    origin is the origin's string: a re-run holds every reference of every article (436,000
    at 100,000 generated articles), each of them once with its own copies."""
    one = (shared if shared is not None else {}).setdefault
    try:
        refs, skipped, warnings, title, date = json.loads(value.decode("utf-8", "surrogatepass"))
        references = tuple(_reference(article, where, kind, url, origin, proxy, alternates, one)
                           for where, kind, url, origin, proxy, alternates in refs)
        if any(ref.kind not in KINDS for ref in references):
            return None
        return ArticleScan(article, path, references,
                           tuple(Skipped(article, w, v, r) for w, v, r in skipped),
                           tuple(warnings), title, date)
    except (ValueError, TypeError):
        return None
