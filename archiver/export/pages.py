"""One page per article for replay tools: a small HTML page (written into the WARC as a
``resource`` record) that shows the article's archived media from their origin URLs, and its
line in ``pages/pages.jsonl``.

Articles have no URL of their own, so each page gets one under ``archiver.invalid``: the
``.invalid`` top-level domain is reserved (RFC 2606) and can never be mistaken for a live site.
Everything taken from an article (title, id, URLs) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from archiver.dates import article_date
from archiver.store.keys import encode_path

PAGE_BASE = "https://archiver.invalid/articles/"
PAGES_HEADER = {"format": "json-pages-1.0", "id": "pages", "title": "Articles"}
MAX_TITLE = 500


def page_url(article: str) -> str:
    return f"{PAGE_BASE}{encode_path(article)}.html"


def exported_origins(doc: Mapping[str, Any], captured: Mapping[str, datetime]) -> list[
        tuple[str, str]]:
    """(origin, kind) of each exported asset the article references, once each, in order."""
    seen: dict[str, str] = {}
    for ref in doc.get("references") or ():
        if not isinstance(ref, dict):
            continue
        origin, asset = ref.get("origin"), ref.get("asset")
        if isinstance(origin, str) and asset in captured and origin not in seen:
            seen[origin] = str(ref.get("kind") or "image")
    return list(seen.items())


def page_html(doc: Mapping[str, Any], media: list[tuple[str, str]]) -> bytes:
    title = html.escape(str(doc.get("title") or doc["article"])[:MAX_TITLE])
    lines = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">', f"<title>{title}</title>",
             "</head><body>", f"<h1>{title}</h1>",
             f"<p>Article <code>{html.escape(str(doc['article']))}</code>"
             + (f", {html.escape(str(doc.get('date')))}" if doc.get("date") else "")
             + f": {len(media)} archived media.</p>", "<ol>"]
    for origin, kind in media:
        src = html.escape(origin, quote=True)
        tag = f'<video src="{src}" controls></video>' if kind == "video" \
            else f'<img src="{src}" loading="lazy">'
        lines.append(f'<li>{tag}<br><a href="{src}">{html.escape(origin)}</a></li>')
    lines += ["</ol>", "</body></html>", ""]
    return "\n".join(lines).encode("utf-8")


def page_line(doc: Mapping[str, Any], when: datetime, size: int) -> dict[str, Any]:
    """The article's line in pages.jsonl: id, url, ts (when its page was captured), title and
    the article's own date."""
    line: dict[str, Any] = {"id": doc["article"], "url": page_url(doc["article"]),
                            "ts": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "title": str(doc.get("title") or doc["article"])[:MAX_TITLE],
                            "size": size}
    published = article_date(doc.get("date"))
    if published is not None:
        line["date"] = published.strftime("%Y-%m-%dT%H:%M:%SZ")
    return line
