"""Target planning: which references of an article point where once rewritten.

Archived references become targets (``<base>/<key>``); a still archived in its own right
(e.g. also a ``headimg``) keeps its own copy. A thumbnail whose original is archived (the
reference's alternate: ``<a href=big><img src=thumb></a>``, ``data-original-src``) points at
the original's copy, unless the article references it in its own right. v.qq.com players
(iframes, ``div.iframe_video`` ids) are not URL targets: an iframe needs a player page, not a
file; their archived records are ``kept``, for ``--video-tags`` to swap whole (players.py).
Pure: data in, data out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from archiver import urls
from archiver.errors import ConfigError
from archiver.models import ArticleScan, asset_id


@dataclass(frozen=True)
class Missing:
    """A reference whose asset is not archived: left as written."""

    origin: str
    url: str
    kind: str
    status: str  # failed | skipped | pending (no record)
    error: str | None = None


@dataclass(frozen=True)
class Targets:
    """What one article's references resolve to (see ``plan_targets``)."""

    urls: dict[str, str] = field(default_factory=dict)  # origin -> archived copy's URL
    gifs: dict[str, frozenset[str]] = field(default_factory=dict)  # GIF origin -> stills
    missing: tuple[Missing, ...] = ()
    kept: tuple[str, ...] = ()  # archived video players left as they are
    done: tuple[str, ...] = ()  # references that already are archived copies

def public_url(base_url: str, key: str) -> str:
    """``<base_url>/<key>``, the key percent-encoded as a URL path."""
    return f"{base_url.rstrip('/')}/{quote(key, safe='/~')}"

def check_base_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL or a site path (``/archive``), else
    ConfigError."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"base URL does not parse: {url!r}: {exc}") from exc
    site_path = url.startswith("/") and not url.startswith("//")
    if not site_path and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError(f"base URL must be http(s)://host/... or /path: {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"base URL must not carry a query or fragment: {url!r}")
    return url

def plan_targets(
    scan: ArticleScan, rows: Mapping[str, Mapping[str, Any]], url_for: Callable[[str], str],
) -> Targets:
    """Sort an article's references by their record (``rows``: ``Manifest.summaries()``):
    archived ones become targets (``url_for(key)``), v.qq.com players are kept, references
    that are themselves archived copies (their path ends with an archived key) are done, the
    rest are missing."""
    by_name = {str(row["key"]).rsplit("/", 1)[-1]: str(row["key"])
               for row in rows.values() if row.get("status") == "archived" and row.get("key")}
    targets: dict[str, str] = {}
    gifs: dict[str, frozenset[str]] = {}
    missing: list[Missing] = []
    kept: list[str] = []
    done: list[str] = []
    thumbnails: list[tuple[str, str]] = []  # (alternate, its original's copy)
    for ref in scan.references:
        path = ref.origin.split("?", 1)[0]
        key = by_name.get(path.rsplit("/", 1)[-1])
        if key is not None and path.endswith("/" + key):
            done.append(ref.origin)
            continue
        row = rows.get(asset_id(ref.origin))
        if row is None or row.get("status") != "archived" or not row.get("key"):
            status = str(row.get("status")) if row else "pending"
            error = row.get("error") if row else None
            missing.append(Missing(ref.origin, ref.url, ref.kind, status,
                                   str(error) if error else None))
        elif urls.canonical_video(ref.origin) is not None:
            kept.append(ref.origin)
        else:
            targets[ref.origin] = url_for(str(row["key"]))
            if ref.kind == "gif" and ref.alternates:
                gifs[ref.origin] = frozenset(ref.alternates)
            elif ref.kind == "image":
                thumbnails.extend((alternate, targets[ref.origin]) for alternate in ref.alternates)
    own = {ref.origin for ref in scan.references}
    for thumbnail, url in thumbnails:
        if thumbnail not in own:
            targets.setdefault(thumbnail, url)
    return Targets(targets, gifs, tuple(missing), tuple(kept), tuple(done))
