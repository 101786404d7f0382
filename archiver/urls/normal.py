"""URL normalisation: a URL as written -> its media origin (and the proxy it was wrapped in)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from archiver.settings import ScanSettings, host_matches
from archiver.urls.escapes import as_surrogates, has_escapes
from archiver.urls.proxies import unwrap

# Skip reasons, shared with the collector and the tests.
DATA_URI = "data-uri"
JAVASCRIPT = "javascript"
UNSUPPORTED_SCHEME = "unsupported-scheme"
RELATIVE = "relative"
INVALID = "invalid-url"
UNSUPPORTED_VIDEO = "unsupported-video"

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# WHATWG URL parsing removes tabs and newlines anywhere; scraped attributes contain them.
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# Characters kept as written in a path or query; everything else (spaces, non-ASCII) is
# percent-encoded so that "a b.jpg" and "a%20b.jpg" are one origin.
_SAFE_PATH = "/%:@!$&'()*+,;=~-._"
_SAFE_QUERY = _SAFE_PATH + "?"


@dataclass(frozen=True, slots=True)
class Normal:
    """A URL resolved to its origin: ``proxy`` is the prefix it was wrapped in, if any."""

    origin: str
    proxy: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a URL-like value is not a reference (a ``Skipped`` reason)."""

    reason: str


def normalise(
    raw: str, settings: ScanSettings, *, entities: bool = True
) -> Normal | Rejected | None:
    """The origin of ``raw``: entities decoded (unless the parser did), whitespace trimmed,
    scheme-relative made absolute, fragment dropped, proxies unwrapped, host lowercased.

    None for an empty value (nothing was written, so nothing is skipped).
    """
    text = html.unescape(raw) if entities and "&" in raw else raw
    text = _TAB_NEWLINE.sub("", text.strip(" \t\n\r\f\v\u00a0\ufeff"))
    if not text or text == "#":
        return None
    absolute = _absolute(text, settings)
    if isinstance(absolute, Rejected):
        return absolute
    inner, proxy = unwrap(absolute, settings.proxies)
    origin = _canonical(inner) if proxy is None else _canonical(
        _absolute_or_none(inner, settings) or inner)
    if origin is None:
        return Rejected(INVALID)
    return Normal(origin, proxy)


def _absolute(text: str, settings: ScanSettings) -> str | Rejected:
    if text.startswith("//"):
        return f"{settings.default_scheme}:{text}"
    match = _SCHEME.match(text)
    if match is None:
        if settings.base_url:
            return urljoin(settings.base_url, text)
        return Rejected(RELATIVE)
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return text
    if scheme == "data":
        return Rejected(DATA_URI)
    if scheme == "javascript":
        return Rejected(JAVASCRIPT)
    return Rejected(UNSUPPORTED_SCHEME)


def _absolute_or_none(text: str, settings: ScanSettings) -> str | None:
    result = _absolute(text, settings)
    return None if isinstance(result, Rejected) else result


def _canonical(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if has_escapes(host):
        return None  # a host name of bytes that are not text is no host
    scheme = parts.scheme.lower()
    netloc = host.lower().rstrip(".")
    if not netloc.isascii():  # an internationalised name: its ASCII form, the one DNS knows
        netloc = _ascii_host(netloc)
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    # Bytes the article holds that are not UTF-8 are percent-encoded as those bytes.
    path = parts.path or "/"
    if "/." in path:  # "/a/../b.jpg" is "/b.jpg", as a browser asks for it
        path = _without_dot_segments(path)
    path = quote(as_surrogates(path), safe=_SAFE_PATH, errors="surrogateescape")
    query = quote(as_surrogates(parts.query), safe=_SAFE_QUERY, errors="surrogateescape")
    return urlunsplit((scheme, netloc, path, query, ""))


def _ascii_host(host: str) -> str:
    """``例子.测试`` -> ``xn--fsqu00a.xn--0zwm56d``, as a browser looks it up (a name the IDNA
    codec refuses is kept as written: no lookup would find it either)."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _without_dot_segments(path: str) -> str:
    """RFC 3986's remove_dot_segments (5.2.4): ``.`` and ``..`` segments resolved, as every
    browser resolves them before asking; a ``..`` above the root stays at the root."""
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) if out and out[0] == "" else "/" + "/".join(out)


def on_hosts(url: str, patterns: Sequence[str]) -> bool:
    """True when the URL's host matches one of the glob patterns (``host_matches``)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return any(host_matches(host, pattern) for pattern in patterns)
