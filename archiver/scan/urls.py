"""URL normalisation to the media origin, media kinds, and v.qq.com's canonical video form."""

from __future__ import annotations

import fnmatch
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urljoin, urlsplit, urlunsplit

from archiver.scan.proxies import unwrap
from archiver.settings import ScanSettings

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".svg", ".avif",
    ".heic", ".heif", ".tif", ".tiff", ".ico", ".apng",
})
VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".m3u8", ".m4v", ".ogv", ".mkv", ".flv"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wav", ".flac"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS

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
_VID = re.compile(r"^[A-Za-z0-9]{5,24}$")
_VQQ_PAGE = re.compile(r"^/x/page/([A-Za-z0-9]+)\.html$")
_VQQ_COVER = re.compile(r"^/x/cover/([A-Za-z0-9]+)(?:/([A-Za-z0-9]+))?\.html$")
_VQQ_OLD_PAGE = re.compile(r"^/page/(?:[a-z0-9]/){3}([A-Za-z0-9]+)\.html$")


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
    scheme = parts.scheme.lower()
    netloc = host.lower().rstrip(".")
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    query = quote(parts.query, safe=_SAFE_QUERY)
    return urlunsplit((scheme, netloc, path, query, ""))


def extension(url: str) -> str:
    """The lowercased extension of the URL's last path segment ('' when none).

    jandan's ``x.jpg!custom`` style suffixes (image-server variants) are ignored.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    name = path.rsplit("/", 1)[-1].split("!", 1)[0]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_media_url(url: str) -> bool:
    """True when the URL names a media file by extension or is a v.qq.com video."""
    return extension(url) in MEDIA_EXTENSIONS or canonical_video(url) is not None


def kind_of(origin: str, hint: str | None = None) -> str:
    """``video`` for v.qq.com pages, video/audio files or a video hint; ``gif`` for a .gif
    path or a gif hint; else ``image``."""
    ext = extension(origin)
    if hint == "video" or ext in VIDEO_EXTENSIONS or ext in AUDIO_EXTENSIONS:
        return "video"
    if canonical_video(origin) is not None:
        return "video"
    if hint == "gif" or ext == ".gif":
        return "gif"
    return "image"


def canonical_video(url: str) -> str | None:
    """``https://v.qq.com/x/page/<vid>.html`` for the v.qq.com page, iframe player, txp
    player, mobile and old page forms; cover pages ``/x/cover/<sid>[/<vid>].html`` are kept.

    None when the URL is not a v.qq.com video.
    """
    if "qq.com" not in url.lower():
        return None
    text = url.strip()
    if text.startswith("//"):
        text = "https:" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if not (host == "v.qq.com" or host.endswith(".v.qq.com") or host == "video.qq.com"
            or host.endswith(".video.qq.com")):
        return None
    path = parts.path
    for pattern in (_VQQ_PAGE, _VQQ_OLD_PAGE):
        match = pattern.match(path)
        if match:
            return _page(match.group(1))
    cover = _VQQ_COVER.match(path)
    if cover:
        sid, vid = cover.groups()
        tail = f"{sid}/{vid}" if vid else sid
        return f"https://v.qq.com/x/cover/{tail}.html"
    vid = dict(parse_qsl(parts.query)).get("vid", "").strip()
    if vid.lower().startswith(("http:", "https:", "//")):
        return canonical_video(vid) if vid != url else None
    if _VID.match(vid):
        return _page(vid)
    return None


def _page(vid: str) -> str:
    return f"https://v.qq.com/x/page/{vid}.html"


def host_matches(url: str, patterns: Sequence[str]) -> bool:
    """True when the URL's host matches one of the glob patterns."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)
