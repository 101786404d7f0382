"""Unwrap image/CORS proxy URLs to their origin, and wrap an origin back into a proxy.

A *proxy prefix* is what ``Reference.proxy`` holds and what ``wrap`` takes: the part of a
proxied URL that precedes the origin, in a canonical form per rule style:

- ``query``: ``https://cors.zfour.workers.dev/?`` (the whole query string is the inner URL),
  ``https://cors.zfour.workers.dev/?url=`` (the query is ``<param>=`` and the inner URL, raw
  or percent-encoded), or ``https://cors-anywhere.herokuapp.com/`` and
  ``https://thingproxy.freeboard.io/fetch/`` (no such query: the inner URL, scheme and all,
  follows a ``/`` of the path, as CORS-anywhere style proxies take it)
- ``param``: ``https://wsrv.nl/?url=`` (the inner URL is one query parameter)
- ``path``:  ``https://i0.wp.com/`` (the path is ``/<host>/<path>`` of the inner URL)

A payload percent-encoded twice (``http%253A%252F%252F...``, a scraper's double escape) is
decoded twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from archiver.errors import ConfigError
from archiver.settings import ProxyRule

# Nested proxies (a proxy of a proxy) exist in scraped feeds; a small bound keeps a hostile
# self-referencing URL from looping.
MAX_DEPTH = 5

# Jetpack (i0.wp.com) only re-encodes images on https when asked; it ignores the origin query.
_JETPACK_HTTPS = {"ssl": "1"}


# Every URL is checked against the proxy rules, and a few hosts carry nearly all of them: the
# rule a host matches is remembered per list of rules (the list is kept, and its rules compared
# at each call, so that another or a changed list starts afresh). Bounded for hostile input.
_MEMO_LISTS = 8
_MEMO_HOSTS = 4096
_memo: dict[int, tuple[Sequence[ProxyRule], tuple[ProxyRule, ...],
                       dict[str, ProxyRule | None]]] = {}


def match_rule(host: str, rules: Sequence[ProxyRule]) -> ProxyRule | None:
    """The first rule one of whose host patterns matches ``host``."""
    entry = _memo.get(id(rules))
    if entry is None or entry[0] is not rules or entry[1] != tuple(rules):
        if len(_memo) >= _MEMO_LISTS:
            _memo.clear()
        entry = _memo[id(rules)] = (rules, tuple(rules), {})
    hosts = entry[2]
    if host in hosts:
        return hosts[host]
    rule = next((rule for rule in rules if rule.matches(host)), None)
    if len(hosts) < _MEMO_HOSTS:
        hosts[host] = rule
    return rule


def unwrap(url: str, rules: Sequence[ProxyRule]) -> tuple[str, str | None]:
    """(inner origin, outermost proxy prefix or None), unwrapping nested proxies.

    A URL on a proxy host whose payload does not look like a URL is not a proxy use (a
    ``*.workers.dev`` site serving its own files): it is returned unchanged with None.
    """
    prefix: str | None = None
    current = url
    for _ in range(MAX_DEPTH):
        step = _unwrap_once(current, rules)
        if step is None:
            break
        current, this_prefix = step
        if prefix is None:
            prefix = this_prefix
    return current, prefix


def wrap(prefix: str, origin: str, rules: Sequence[ProxyRule]) -> str:
    """The URL that fetches ``origin`` through the proxy named by ``prefix``.

    Raises ConfigError when no rule matches the prefix's host (the config changed since the
    scan) and the prefix's form does not say how to append the origin.
    """
    parts = urlsplit(prefix)
    rule = match_rule(parts.hostname or "", rules)
    style = rule.style if rule else _style_from_prefix(prefix)
    if style == "query" and not prefix.endswith("="):
        return prefix + origin
    if style in ("query", "param"):
        return prefix + quote(origin, safe="")
    inner = urlsplit(origin)
    base = prefix if prefix.endswith("/") else prefix + "/"
    path = inner.path or "/"
    tail = "?ssl=1" if inner.scheme == "https" else ""
    return f"{base}{inner.netloc}{path}{tail}"


def _style_from_prefix(prefix: str) -> str:
    if prefix.endswith("?"):
        return "query"
    if prefix.endswith("="):
        return "param"
    raise ConfigError(f"no proxy rule matches prefix {prefix!r}")


def _unwrap_once(url: str, rules: Sequence[ProxyRule]) -> tuple[str, str] | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    rule = match_rule(host, rules)
    if rule is None:
        return None
    base = f"{parts.scheme}://{host.lower()}"
    if parts.port:
        base += f":{parts.port}"
    if rule.style == "query":
        # Everything after the first "?" is the inner URL, including its own "?" and "&"; or
        # after "<param>=" when the query starts so; or, with neither, the path's tail.
        raw = url.split("?", 1)[1] if "?" in url else ""
        named = f"{rule.param}="
        if raw.startswith(named) and (inner := _as_url(raw[len(named):], rule.default_scheme)):
            return inner, f"{base}{parts.path or '/'}?{named}"
        inner = _as_url(raw, rule.default_scheme)
        if inner:
            return inner, f"{base}{parts.path or '/'}?"
        return _unwrap_in_path(url, parts, base)
    if rule.style == "param":
        for key, value in parse_qsl(parts.query, keep_blank_values=True,
                                     errors="surrogateescape"):
            if key == rule.param:
                inner = _as_url(value, rule.default_scheme, decoded=True)
                return (inner, f"{base}{parts.path or '/'}?{rule.param}=") if inner else None
        return None
    return _unwrap_path(parts.path, parts.query, base, rule)


# Where a CORS-anywhere style proxy's path holds the inner URL: after a "/", with its scheme
# (some servers fold "//" to "/", so one slash after the colon is enough).
_SCHEME_IN_PATH = re.compile(r"/(https?):/+", re.IGNORECASE)


def _unwrap_in_path(url: str, parts: SplitResult, base: str) -> tuple[str, str] | None:
    found = _SCHEME_IN_PATH.search(parts.path)
    if found is None:
        return None
    start = len(parts.scheme) + 3 + len(parts.netloc) + found.end()  # in ``url``
    inner = _as_url(f"{found.group(1).lower()}://{url[start:]}", "http")
    return (inner, base + parts.path[:found.start() + 1]) if inner else None


def _unwrap_path(path: str, query: str, base: str, rule: ProxyRule) -> tuple[str, str] | None:
    host, _, rest = path.lstrip("/").partition("/")
    if "." not in host or not rest:
        return None
    params = dict(parse_qsl(query))
    https = any(params.get(k) == v for k, v in _JETPACK_HTTPS.items())
    scheme = "https" if https else rule.default_scheme
    return f"{scheme}://{host}/{rest}", f"{base}/"


_ENCODED = ("http%3a", "https%3a", "%2f%2f", "http%253a", "https%253a", "%252f%252f")


def _as_url(raw: str, default_scheme: str, decoded: bool = False) -> str | None:
    """The inner URL of a proxy payload, or None when the payload is not a URL."""
    text = raw.strip()
    lowered = text.lower()
    if not decoded and lowered.startswith(_ENCODED):
        text = unquote(text, errors="surrogateescape")  # bytes kept for the origin
        lowered = text.lower()
    if lowered.startswith(_ENCODED):  # encoded twice (or, decoded, once more)
        text = unquote(text, errors="surrogateescape")
        lowered = text.lower()
    if lowered.startswith("ssl:"):  # weserv's legacy spelling of https
        text = "https://" + text[4:]
    elif lowered.startswith("//"):
        text = f"{default_scheme}:{text}"
    elif not lowered.startswith(("http://", "https://")):
        host = text.split("/", 1)[0]
        if "." not in host or not _looks_like_host(host):
            return None
        text = f"{default_scheme}://{text}"
    try:
        inner = urlsplit(text)
        if not inner.hostname:
            return None
    except ValueError:
        return None
    return text


def _looks_like_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0]
    return all(c.isalnum() or c in "-." for c in name) and not name.startswith(".")
