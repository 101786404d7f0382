"""The one boundary where yt-dlp's exceptions and messages become archiver errors.

yt-dlp wraps most failures in ``DownloadError`` (the cause in ``exc_info``) and many extractors
only say what happened in the message, so both the exception chain and the text are read. What
the fetcher observed itself (the byte cap tripped, the egress proxy refused a host) wins over
whatever yt-dlp made of it, because yt-dlp reports those as generic download failures.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence

from archiver.errors import (
    Blocked,
    ConnectFailed,
    DRMProtected,
    ExtractorFailed,
    FetchError,
    FragmentMissing,
    GeoBlocked,
    Gone,
    TimedOut,
    TooLarge,
    Truncated,
    Unsupported,
    http_error,
)


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], type[FetchError]], ...]:
    """Checked in order against the error text; the first match decides. Compiled at the first
    video failure (case-insensitive patterns with CJK text: about 1 ms of every start-up)."""
    return tuple((re.compile(p, re.I), cls) for p, cls in (
        (r"DRM", DRMProtected),
        (r"max-filesize|larger than", TooLarge),
        (r"fragment \d+ not found|unable to continue|fragment.*(missing|unavailable)",
         FragmentMissing),
        (r"not available (in|from) your (country|location)|geo.?restrict|区域|地区",
         GeoBlocked),
        (r"private video|video is private|has been removed|been deleted|no longer available"
         r"|video unavailable|is unavailable|does not exist|terminated|copyright"
         r"|已下线|不存在|已删除", Gone),
        (r"unsupported url|is a playlist|requested format is not available|no video formats",
         Unsupported),
        (r"timed? ?out", TimedOut),
        (r"content too short|incomplete ?read|did not get any data", Truncated),
        (r"connection (refused|reset|aborted)|name or service not known|network is unreachable"
         r"|unable to connect|errno|urlopen error|proxy", ConnectFailed),
    ))


def map_error(
    exc: BaseException,
    *,
    messages: Sequence[str] = (),
    over_cap: int | None = None,
    blocked: Sequence[Blocked] = (),
    fragmented: bool = False,
) -> FetchError:
    """The archiver error for a yt-dlp failure.

    ``messages``: the errors yt-dlp logged during the task; ``over_cap``: the cap in bytes when
    the fetcher's own size check tripped; ``blocked``: what the egress proxy refused;
    ``fragmented``: the failure came while a segmented download was under way, so an HTTP or
    network error there means a fragment is missing, not that the video is gone.
    """
    if over_cap is not None:
        return TooLarge(f"video is larger than {over_cap} bytes", limit=over_cap)
    if blocked:
        first = blocked[0]
        return Blocked(f"yt-dlp tried a refused address: {first.message}", **first.details)
    if isinstance(exc, FetchError):
        return exc
    chain = list(_causes(exc))
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import GeoRestrictedError, UnsupportedError

    for cause in chain:
        if isinstance(cause, GeoRestrictedError):
            return GeoBlocked(_text(cause), countries=list(cause.countries or []))
        if isinstance(cause, UnsupportedError):
            return Unsupported(_text(cause))
    text = " | ".join([*(_text(c) for c in chain), *messages[-3:]])
    if fragmented and not re.search(r"DRM", text):
        return FragmentMissing(_short(text))
    for pattern, cls in _patterns():
        if pattern.search(text):
            return cls(_short(text))
    for cause in chain:
        if isinstance(cause, HTTPError):
            status = int(cause.status)
            if status in (404, 410):
                return Gone(f"HTTP {status}: {_short(text)}", status=status)
            return http_error(status)
        if isinstance(cause, TimeoutError):
            return TimedOut(_short(text))
        if isinstance(cause, (TransportError, ConnectionError)):
            return ConnectFailed(_short(text))
    # Anything else is the extractor not understanding the site (it changed, or yt-dlp has a
    # bug): transient, retried a bounded number of times, then reported.
    return ExtractorFailed(_short(text) or type(exc).__name__)


def release(exc: BaseException) -> None:
    """Close the HTTP responses yt-dlp's errors hold (an ``HTTPError`` keeps its response, and
    with it a connection, open until it is closed)."""
    from yt_dlp.networking.exceptions import HTTPError

    for cause in _causes(exc):
        if isinstance(cause, HTTPError):
            cause.close()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it wraps: yt-dlp's ``exc_info`` and ``cause``, Python's chain."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop(0)
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        info = getattr(cur, "exc_info", None)
        if isinstance(info, tuple) and len(info) == 3 and isinstance(info[1], BaseException):
            todo.append(info[1])
        cause = getattr(cur, "cause", None)
        if isinstance(cause, BaseException):
            todo.append(cause)
        todo.extend([cur.__cause__, cur.__context__])


def _text(exc: BaseException) -> str:
    text = str(getattr(exc, "orig_msg", None) or exc)
    # yt-dlp appends a "please report this issue" paragraph to unexpected errors.
    return re.sub(r";?\s*please report this issue.*", "", text, flags=re.I | re.S).strip()


def _short(text: str, limit: int = 500) -> str:
    text = text.removeprefix("ERROR: ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
