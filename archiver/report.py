"""A static HTML report of an archive: totals by status and route, then each article's references
with a thumbnail of the preserved copy, the original URL, route, size and, for each failure,
its reason. One self-contained file (inline CSS and script, no server): thumbnails point at the
local store's files (relative to the report) or at ``store.public_base_url`` for S3.

Records are read through ``Manifest`` only; everything from them is escaped, and only http(s)
origins become links.
"""

from __future__ import annotations

import html
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from archiver.manifest import Manifest
from archiver.models import Record
from archiver.rewrite.targets import public_url
from archiver.settings import Settings
from archiver.store.base import Store

STATUSES = ("archived", "failed", "skipped")
NO_ARTICLE = "(no article)"


@dataclass
class ReportStats:
    """What a report shows: assets by status and route, articles, bytes archived."""

    path: str
    assets: int = 0
    articles: int = 0
    bytes: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    thumbnails: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "assets": self.assets, "articles": self.articles,
                "bytes": self.bytes, "statuses": dict(self.statuses),
                "routes": dict(self.routes), "thumbnails": self.thumbnails}


def write_report(manifest: Manifest, store: Store, settings: Settings, out: Path) -> ReportStats:
    """Write the report of every record of ``manifest`` to ``out`` (parents created)."""
    out = out.resolve()
    records = sorted(manifest.iter_records(), key=lambda r: r.origin)
    stats = ReportStats(str(out))
    by_article: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        stats.assets += 1
        stats.statuses[record.status] += 1
        stats.routes[record.route or "none"] += 1
        if record.status == "archived":
            stats.bytes += record.size or 0
        for article in {c.article for c in record.citations} or {NO_ARTICLE}:
            by_article[article].append(record)
    stats.articles = len(by_article)
    thumbs = _Thumbnails(store, settings, out.parent)
    body = "\n".join(_article(name, by_article[name], thumbs) for name in sorted(by_article))
    stats.thumbnails = thumbs.count
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(_page(stats, settings.store.url, body), encoding="utf-8")
    os.replace(tmp, out)
    return stats


class _Thumbnails:
    """Where the page finds a stored object: a path relative to the report for a local store,
    ``public_base_url``/key for S3 (or the store's own URL when that is unset)."""

    def __init__(self, store: Store, settings: Settings, base: Path) -> None:
        self.store = store
        self.public_base = settings.store.public_base_url
        self.base = base
        self.count = 0

    def src(self, key: str) -> str:
        url = self.store.public_url(key)
        if url.startswith("file://"):
            path = Path(unquote(urlsplit(url).path))
            return quote(os.path.relpath(path, self.base).replace(os.sep, "/"), safe="/~.-_")
        return public_url(self.public_base, key) if self.public_base else url

    def cell(self, record: Record) -> str:
        if record.status != "archived" or not record.key:
            return '<td class="thumb"></td>'
        still = record.related.get("thumbnail") if record.kind == "video" else record.key
        self.count += 1
        if still:
            return (f'<td class="thumb"><img loading="lazy" decoding="async" alt="" '
                    f'src="{_attr(self.src(still))}"></td>')
        return (f'<td class="thumb"><video preload="metadata" muted '
                f'src="{_attr(self.src(record.key))}"></video></td>')


def _article(name: str, records: list[Record], thumbs: _Thumbnails) -> str:
    counts: Counter[str] = Counter(r.status for r in records)
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    rows = "\n".join(_row(r, thumbs) for r in records)
    statuses = " ".join(sorted(counts))
    return (f'<section class="article" data-statuses="{statuses}">'
            f"<h2>{_text(name)} <small>{summary}</small></h2>"
            "<table><thead><tr><th></th><th>original</th><th>status</th><th>route</th>"
            f"<th>size</th><th>reason</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
            "</section>")


def _row(record: Record, thumbs: _Thumbnails) -> str:
    error = record.error or {}
    reason = ""
    if record.status != "archived" and error:
        reason = f"<code>{_text(error.get('code', '?'))}</code> {_text(error.get('message', ''))}"
    route = record.route or ", ".join(dict.fromkeys(a.route for a in record.attempts)) or "-"
    size = _human(record.size) if record.size else ""
    dims = f" {record.width}×{record.height}" if record.width and record.height else ""
    return (f'<tr class="{_attr(record.status)}" data-status="{_attr(record.status)}">'
            f"{thumbs.cell(record)}<td class=\"origin\">{_link(record.origin)}"
            f"<div class=\"kind\">{_text(record.kind)}{_text(dims)}</div></td>"
            f'<td><span class="badge {_attr(record.status)}">{_text(record.status)}</span></td>'
            f"<td>{_text(route)}</td><td class=\"num\">{size}</td><td>{reason}</td></tr>")


def _page(stats: ReportStats, store_url: str, body: str) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    status_rows = "".join(
        f'<tr><td><span class="badge {s}">{s}</span></td>'
        f'<td class="num" data-count="{s}">{stats.statuses[s]}</td></tr>' for s in STATUSES)
    route_rows = "".join(f'<tr><td>{_text(r)}</td><td class="num" data-route="{_attr(r)}">{n}'
                         f"</td></tr>" for r, n in stats.routes.most_common())
    filters = "".join(
        f'<label><input type="radio" name="status" value="{s}"> {s}</label>'
        for s in STATUSES)
    return _TEMPLATE.format(
        store=_text(store_url), generated=generated,
        assets=stats.assets, articles=stats.articles, size=_human(stats.bytes),
        status_rows=status_rows, route_rows=route_rows, filters=filters, body=body,
    )


def _link(url: str) -> str:
    if urlsplit(url).scheme in ("http", "https"):
        return f'<a href="{_attr(url)}" rel="noreferrer noopener">{_text(url)}</a>'
    return _text(url)


def _text(value: object) -> str:
    return html.escape(str(value), quote=False)


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src * data: file:;
 media-src * file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>archiver report: {store}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; margin: 0 0 .2em; }} h2 {{ font-size: 1.05em; margin: 1.4em 0 .4em; }}
h2 small {{ color: #666; font-weight: normal; }}
.meta {{ color: #666; }} .totals {{ display: flex; gap: 3em; margin: 1em 0; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .25em .6em; text-align: left;
 vertical-align: middle; border-bottom: 1px solid #eee; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.thumb {{ width: 96px; }} .thumb img, .thumb video {{ max-width: 96px; max-height: 72px;
 display: block; background: #f4f4f4; }}
.origin {{ max-width: 46em; word-break: break-all; }} .kind {{ color: #888; font-size: .85em; }}
.badge {{ padding: .05em .5em; border-radius: .8em; font-size: .85em; }}
.badge.archived {{ background: #dcf5dc; }} .badge.failed {{ background: #fbdcdc; }}
.badge.skipped {{ background: #eee; }} code {{ background: #f4f4f4; padding: 0 .3em; }}
.filters label {{ margin-right: 1em; }} [hidden] {{ display: none !important; }}
</style></head>
<body>
<h1>archiver report</h1>
<p class="meta">store <code>{store}</code>, generated {generated}: {assets} assets in {articles}
 articles, {size} archived</p>
<div class="totals">
<table><thead><tr><th>status</th><th>assets</th></tr></thead><tbody>{status_rows}</tbody></table>
<table><thead><tr><th>route</th><th>assets</th></tr></thead><tbody>{route_rows}</tbody></table>
</div>
<p class="filters"><label><input type="radio" name="status" value="" checked> all</label>
{filters} <span id="shown"></span></p>
<main>
{body}
</main>
<script>
function show(status) {{
  let rows = 0;
  for (const section of document.querySelectorAll("section.article")) {{
    let visible = 0;
    for (const row of section.querySelectorAll("tbody tr")) {{
      row.hidden = status !== "" && row.dataset.status !== status;
      if (!row.hidden) visible++;
    }}
    section.hidden = visible === 0;
    rows += visible;
  }}
  document.getElementById("shown").textContent = rows + " references shown";
}}
for (const input of document.querySelectorAll("input[name=status]")) {{
  input.addEventListener("change", () => show(input.value));
}}
show("");
</script>
</body></html>
"""
