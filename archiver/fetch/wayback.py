"""Route ``wayback``: an original that is gone, recovered from a Wayback Machine capture.

The route comes last in the default ladder and runs only when the earlier routes showed the
original gone or unusable (``worth_recovering``: 404/410, a name DNS says does not exist, a
refused connection, not media, a redirect to a placeholder), never after throttling or
transient errors: those are retried on the origin itself.

1. Lookup: the route's URL is the CDX query ``{endpoint}/cdx/search/cdx?url=<origin>`` (see
   ``plan.routes.lookup_url``: JSON, successful captures only, one a day at most). A 429 pauses
   the endpoint host for every worker (Retry-After, else ``wayback.pause``) and the lookup is
   asked again inside ``wayback.deadline``; past it the error stays transient, so the asset
   is retried later.
2. Choice: captures recorded as HTML are left out, the rest ordered by distance to the
   article's date (the earliest citing article's front-matter date, else the record's
   first-seen time, else now).
3. Bytes: up to ``wayback.captures`` of them, nearest first, from
   ``{endpoint}/web/{timestamp}id_/{original}`` (``id_``: the capture as it was served, no
   banner, no rewritten links), through the HTTP fetcher's own route machinery, so every check
   of a fetch holds (guard, connect-to, caps, sniffed type, an HTML page refused, sha256).

The fetch reports route ``wayback`` and, in its facts (the record's ``extra``), the capture's
timestamp, replay URL and original URL, so a reader can tell a recovered capture from a
preserved original.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from archiver.dates import iso, parse_time
from archiver.errors import (
    ConnectFailed,
    FetchError,
    HostDown,
    HTTPPermanent,
    NameNotFound,
    NoCapture,
    NotMedia,
    PermanentFetchError,
    Placeholder,
    TooLarge,
    TransientFetchError,
    http_error,
)
from archiver.fetch.base import Fetched
from archiver.fetch.health import HostHealth
from archiver.fetch.hops import try_timeouts
from archiver.fetch.limits import HostLimiter
from archiver.fetch.retry import backoff, parse_retry_after
from archiver.models import Asset, Attempt, now_iso
from archiver.plan.routes import Route
from archiver.settings import Settings

if TYPE_CHECKING:  # the lookups go through httpx (transport.py), loaded when one is made
    import httpx

CDX_MAX_BYTES = 8 * 1024 * 1024
GONE_STATUSES = (404, 410)
_HTML = ("text/html", "application/xhtml")
_EPOCH = "20000101000000"

RouteFetch = Callable[[Asset, Route, list[Attempt], float], Fetched]


@dataclass(frozen=True)
class Capture:
    """One line of the CDX answer."""

    timestamp: str  # YYYYMMDDhhmmss, UTC
    original: str
    mimetype: str = ""
    digest: str = ""

    @property
    def when(self) -> datetime:
        return datetime.strptime(self.timestamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def replay_url(endpoint: str, capture: Capture) -> str:
    """The capture's bytes as they were served (``id_``)."""
    return f"{endpoint.rstrip('/')}/web/{capture.timestamp}id_/{capture.original}"


def parse_cdx(body: bytes) -> list[Capture]:
    """The captures of a JSON CDX answer (a header row naming the fields, then one row per
    capture; empty when there is none). Rows that do not make sense are left out; an answer
    that is not such JSON is a transient error (the server had a bad moment)."""
    if not body.strip():
        return []
    try:
        rows = json.loads(body)
    except ValueError as exc:
        raise TransientFetchError("the CDX answer is not JSON") from exc
    if not isinstance(rows, list) or not rows:
        return []
    header = rows[0]
    if not isinstance(header, list) or "timestamp" not in header or "original" not in header:
        raise TransientFetchError("the CDX answer has no header row")
    captures = []
    for row in rows[1:]:
        if not isinstance(row, list) or len(row) != len(header):
            continue
        item = {str(k): str(v) for k, v in zip(header, row, strict=True)}
        stamp, original = item["timestamp"], item["original"]
        if not (stamp.isdigit() and 4 <= len(stamp) <= 14) or \
                not original.lower().startswith(("http://", "https://")):
            continue
        try:
            # A shorter timestamp names the start of its year, month, day...
            capture = Capture(stamp + _EPOCH[len(stamp):], original, item.get("mimetype", ""),
                              item.get("digest", ""))
            capture.when  # noqa: B018 - a timestamp that is no date is left out
        except ValueError:
            continue
        captures.append(capture)
    return captures


def target_time(asset: Asset, now: datetime) -> datetime:
    """When the capture should come from: the earliest citing article's date, else when the
    asset was first recorded, else ``now``."""
    dates = [d for c in asset.citations if (d := parse_time(c.date)) is not None]
    if dates:
        return min(dates)
    return parse_time(asset.first_seen) or now


def nearest(captures: Sequence[Capture], target: datetime) -> list[Capture]:
    """Captures that may be media (not recorded as HTML), nearest to ``target`` first (the
    earlier one on a tie), one per timestamp."""
    usable = {c.timestamp: c for c in captures if not c.mimetype.lower().startswith(_HTML)}
    return sorted(usable.values(), key=lambda c: (abs(c.when - target), c.when))


def is_gone(exc: FetchError) -> bool:
    """Whether ``exc`` says the file is gone or unusable there (not just unreachable now)."""
    if isinstance(exc, HTTPPermanent):
        return exc.status in GONE_STATUSES
    if isinstance(exc, (NameNotFound, NotMedia, Placeholder)):
        return True
    return isinstance(exc, ConnectFailed) and _refused(exc)


def _refused(exc: BaseException) -> bool:
    """A connection refused somewhere in the exception's chain."""
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return True
        todo += [cur.__cause__, cur.__context__]
    return False


def worth_recovering(tried: Sequence[tuple[str, FetchError]]) -> bool:
    """Whether the failures so far (route name, error) show the original gone: the origin's
    own (``direct``) failure when it was tried, else every route's. With no route tried (a
    host rule puts ``wayback`` first), yes."""
    origin = [exc for name, exc in tried if name == "direct"]
    deciding = origin or [exc for _, exc in tried]
    return all(is_gone(exc) for exc in deciding)


def is_placeholder(requested: str, final: str, patterns: Sequence[str]) -> bool:
    """Whether a redirect from ``requested`` to ``final`` lands on a stand-in: the site's root,
    or a last path segment matching one of ``patterns`` (globs, lowercased)."""
    if final == requested:
        return False
    try:
        path = urlsplit(final).path
        before = urlsplit(requested).path
    except ValueError:
        return False
    if path in ("", "/"):
        return before not in ("", "/")
    name = path.rsplit("/", 1)[-1].lower()
    return name != before.rsplit("/", 1)[-1].lower() and any(
        fnmatch.fnmatchcase(name, p) for p in patterns)


class Wayback:
    """The lookup and the recovery, with the HTTP fetcher's client, limiter and breaker."""

    def __init__(self, settings: Settings, client: Callable[[], httpx.Client],
                 limiter: HostLimiter, health: HostHealth,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.ws = settings.wayback
        self.fs = settings.fetch
        self._client = client
        self.limiter = limiter
        self.health = health
        self._sleep = sleep
        self._clock = clock

    def recover(self, asset: Asset, route: Route, attempts: list[Attempt],
                fetch_route: RouteFetch) -> Fetched:
        """The nearest usable capture of ``asset`` (``route.url`` is its CDX lookup).

        Raises NoCapture when there is none, TooLarge, the last permanent error when every
        capture tried was refused (HTML, not media...), or a transient error (the asset is
        then retried later)."""
        deadline = self._clock() + self.ws.deadline
        target = target_time(asset, datetime.now(UTC))
        ordered = nearest(self._lookup(route.url, attempts, deadline), target)
        if not ordered:
            raise NoCapture(f"the Wayback Machine has no usable capture of {asset.origin}")
        last: PermanentFetchError | None = None
        for capture in ordered[: self.ws.captures]:
            replay = Route(route.name, replay_url(self.ws.endpoint, capture))
            try:
                fetched = fetch_route(asset, replay, attempts, deadline)
            except TooLarge:
                raise
            except PermanentFetchError as exc:
                last = exc  # an HTML page or a broken capture: the next nearest one
                continue
            fetched.facts["wayback"] = {"timestamp": capture.timestamp, "url": replay.url,
                                        "original": capture.original,
                                        "target": iso(target)}
            return fetched
        assert last is not None
        raise last

    def _lookup(self, url: str, attempts: list[Attempt], deadline: float) -> list[Capture]:
        """The captures the CDX server lists, asking again after a 429 (the host paused for
        every worker) or a transient failure (at most ``fetch.retries`` times)."""
        host = urlsplit(url).hostname or ""
        failures = 0
        while True:
            started, at = self._clock(), now_iso()
            try:
                self.health.check(host)
                try:
                    body = self._get(url, deadline)
                except FetchError as exc:
                    self.health.failed(host, exc)
                    raise
                self.health.answered(host)
                captures = parse_cdx(body)
            except FetchError as exc:
                status = exc.details.get("status")
                attempts.append(Attempt("wayback", url, status if isinstance(status, int)
                                        else None, exc.to_dict(),
                                        round(self._clock() - started, 3), at))
                if not isinstance(exc, TransientFetchError) or isinstance(exc, HostDown):
                    raise
                if status != 429:
                    failures += 1
                self._wait(exc, host, failures, deadline)
                continue
            attempts.append(Attempt("wayback", url, 200, None, round(self._clock() - started, 3),
                                    at))
            return captures

    def _wait(self, exc: TransientFetchError, host: str, failures: int, deadline: float) -> None:
        """Before asking again: a 429 pauses the host for everyone (the limiter then holds the
        next request back); other failures back off, ``fetch.retries`` times at most."""
        if exc.details.get("status") == 429:
            wait = exc.retry_after if exc.retry_after is not None else self.ws.pause
            self.limiter.pause(host, wait)  # every worker holds back, whether we wait or not
            if self._clock() + wait >= deadline:
                # Past this asset's deadline: it fails for now as transient, and a Celery
                # task retries it no sooner than the pause (a later run retries it too).
                exc.details["retry_in"] = wait
                raise exc
            return
        if failures > self.fs.retries:
            raise exc
        wait = exc.retry_after if exc.retry_after is not None else backoff(
            failures, self.fs.backoff_base, self.fs.backoff_max)
        if self._clock() + wait >= deadline:
            raise exc
        self._sleep(wait)

    def _get(self, url: str, deadline: float) -> bytes:
        from archiver.fetch.transport import httpx_timeout, open_stream

        remaining = max(0.001, deadline - self._clock())
        timeout = httpx_timeout(try_timeouts(self.fs, remaining))
        headers = {"User-Agent": self.fs.user_agent, "Accept": "application/json"}
        with open_stream(self._client(), url, headers, self.fs.max_redirects,
                         slot=self.limiter.slot, timeout=timeout) as resp:
            if resp.status_code != 200:
                retry = parse_retry_after(resp.headers.get("retry-after"),
                                          self.fs.retry_after_max)
                raise http_error(resp.status_code, retry) if resp.status_code >= 300 else \
                    TransientFetchError(f"CDX answered HTTP {resp.status_code}",
                                        status=resp.status_code)
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > CDX_MAX_BYTES:
                    raise TransientFetchError(f"the CDX answer exceeds {CDX_MAX_BYTES} bytes")
            return bytes(body)
