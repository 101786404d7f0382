"""Link wrappers (``[[scan.links]]``): a link to a page whose query carries the URL it shows,
e.g. an image viewer ``https://site/showimage/x.shtml?https://cdn.site/148.jpg`` around a
thumbnail, or a redirector ``.../GoToLink?url=https%3A%2F%2F...``. Seen through, the link
points at the inner URL. Unlike a proxy, the wrapper is never a route: it serves a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

from archiver.errors import ConfigError
from archiver.settings import LinkRule

MAX_DEPTH = 3  # a redirector around a viewer around ...; bounded against self-reference


def unwrap_link(url: str, rules: Sequence[LinkRule]) -> str | None:
    """The URL a wrapped link carries (``http(s)://`` or ``//``, as written in the query), or
    None when no rule matches ``url`` or its payload is not a URL."""
    inner: str | None = None
    current = url
    for _ in range(MAX_DEPTH):
        step = _unwrap_once(current, rules)
        if step is None:
            break
        inner = current = step
    return inner


def check_links(rules: Sequence[LinkRule]) -> None:
    """Raises ConfigError naming the first rule that does not unwrap one of its examples to
    the example's original."""
    for rule in rules:
        for example in rule.examples:
            got = unwrap_link(example.link, [rule])
            if got != example.original:
                raise ConfigError(
                    f"scan.links rule {rule.name!r}: example {example.link!r} unwraps to "
                    f"{got!r}, not {example.original!r}")


def _unwrap_once(url: str, rules: Sequence[LinkRule]) -> str | None:
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or not parts.query:
        return None
    rule = next((r for r in rules if r.matches(host, parts.path or "/")), None)
    if rule is None:
        return None
    if rule.style == "query":
        payload = url.strip().split("?", 1)[1].split("#", 1)[0]
        if payload.lower().startswith(("http%3a", "https%3a", "%2f%2f")):
            payload = unquote(payload, errors="surrogateescape")
    else:
        values = [v for k, v in parse_qsl(parts.query, keep_blank_values=True,
                                          errors="surrogateescape") if k == rule.param]
        if not values:
            return None
        payload = values[0]
    payload = payload.strip()
    return payload if payload.lower().startswith(("http://", "https://", "//")) else None
