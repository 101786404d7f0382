"""How tables tell failed and skipped assets: each with its error code and a one-line reason,
grouped under one heading when several share the same code and reason."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click

from archiver.cli.options import echo_json, shown
from archiver.models import ArticleScan

MAX_LISTED = 50  # assets named in a table; --format jsonl lists every one
GROUP_AT = 3  # assets sharing a code and reason from which they are told as a group
REASON_CHARS = 160


def reason_of(error: Mapping[str, Any] | None) -> str:
    """The error's message on one line, cut to a readable length."""
    text = " ".join(str((error or {}).get("message") or "").split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def echo_failures(outcomes: list[tuple[str, str, dict[str, Any]]], fmt: str) -> None:
    """The failed and skipped assets: ``failure_lines`` in a table, one object each in jsonl."""
    if fmt == "jsonl":
        for status, origin, error in outcomes:
            echo_json({"event": "not-archived", "status": status, "origin": origin,
                       "code": error.get("code"), "reason": reason_of(error)})
        return
    for line in failure_lines(outcomes):
        click.echo(line)


def failure_lines(outcomes: Iterable[tuple[str, str, Mapping[str, Any] | None]],
                  limit: int = MAX_LISTED) -> list[str]:
    """Table lines for ``(status, origin, error)`` of the assets that did not archive:

        failed   http-404         http://a/x.jpg (HTTP 404)
        failed   dns              3 assets: cannot resolve b: Name or service not known
                                    http://b/1.jpg
                                    ...

    At most ``limit`` assets are named; a last line says how many more there are."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for status, origin, error in outcomes:
        code = str((error or {}).get("code") or "?")
        groups.setdefault((status, code, reason_of(error)), []).append(origin)
    lines: list[str] = []
    named = total = 0
    # The biggest groups first, then by code: the same run always reads the same.
    for (status, code, reason), found in sorted(groups.items(),
                                                key=lambda kv: (-len(kv[1]), kv[0])):
        origins = sorted(found)
        total += len(origins)
        if named >= limit:
            continue
        if len(origins) >= GROUP_AT:
            lines.append(f"{status:8} {code:16} {len(origins)} assets"
                         + (f": {reason}" if reason else ""))
            shown = origins[:limit - named]
            lines.extend(f"{'':27}{origin}" for origin in shown)
        else:
            shown = origins[:limit - named]
            lines.extend(f"{status:8} {code:16} {origin}" + (f" ({reason})" if reason else "")
                         for origin in shown)
        named += len(shown)
    if total > named:
        lines.append(f"... and {total - named} more (--format jsonl lists all)")
    return lines


def echo_skipped(result: ArticleScan, fmt: str) -> None:
    """Each reference the scan skipped, with its reason (``unsupported-video``, ``relative``,
    ...): indented under its article in a table, ``"status": "skipped"`` objects in jsonl."""
    for skipped in result.skipped:
        if fmt == "jsonl":
            echo_json({"article": skipped.article, "where": [skipped.where],
                       "url": skipped.value, "status": "skipped", "reason": skipped.reason})
        else:
            click.echo(f"  skipped {skipped.reason:18} {shown(skipped.value)}  "
                       f"({shown(skipped.article)}: {skipped.where})")
