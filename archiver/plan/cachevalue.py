"""A scan cache entry's value: the scan without its article id and path, as compact JSON
(``encode``), and the scan again from it (``decode_scan``)."""

from __future__ import annotations

import json
from dataclasses import fields

from archiver.models import KINDS, ArticleScan, Kind, Reference, Skipped


def encode(scan: ArticleScan) -> bytes:
    """A scan's value: compact JSON of everything but its article id and path."""
    doc = [[[list(r.where), r.kind, r.url, r.origin, r.proxy, list(r.alternates)]
            for r in scan.references],
           [[s.where, s.value, s.reason] for s in scan.skipped],
           list(scan.warnings), scan.title, scan.date]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass")


def _filled(article: str, where: tuple[str, ...], kind: Kind, url: str, origin: str,
            proxy: str | None, alternates: tuple[str, ...]) -> Reference:
    """``Reference(...)`` with its fields set in one dict update: a frozen dataclass's
    ``__init__`` sets each through ``object.__setattr__``, twice the cost, and a re-run makes
    one per reference of every article (336,524 at 100,000 generated articles)."""
    ref = _new(Reference)
    ref.__dict__.update(article=article, where=where, kind=kind, url=url, origin=origin,
                        proxy=proxy, alternates=alternates)
    return ref


_new = object.__new__
# The shortcut needs instances with a __dict__ holding exactly these fields.
_reference = _filled if "__slots__" not in vars(Reference) and [
    f.name for f in fields(Reference)] == ["article", "where", "kind", "url", "origin", "proxy",
                                           "alternates"] else Reference


def decode_scan(value: bytes, article: str, path: str) -> ArticleScan | None:
    """The scan a value holds, for ``article`` at ``path``; None when it does not decode."""
    try:
        refs, skipped, warnings, title, date = json.loads(value.decode("utf-8", "surrogatepass"))
        references = tuple(_reference(article, tuple(where), kind, url, origin, proxy,
                                      tuple(alternates))
                           for where, kind, url, origin, proxy, alternates in refs)
        if any(ref.kind not in KINDS for ref in references):
            return None
        return ArticleScan(article, path, references,
                           tuple(Skipped(article, w, v, r) for w, v, r in skipped),
                           tuple(warnings), title, date)
    except (ValueError, TypeError):
        return None
