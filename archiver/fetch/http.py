"""The HTTP fetcher: walk the route ladder, retry transient failures, stream, cap and sniff.

For each route (``direct``, ``proxy``, ``mirror``; see routes.py) it makes up to
``1 + fetch.retries`` tries, only retrying transient failures, with backoff or the server's
Retry-After, all inside ``fetch.deadline`` for the asset (until a response starts; a streaming
body has ``fetch.download_deadline``). Permanent failures and timeouts move on to the next route
at once, except ``too-large``: every route serves the same content. Hosts that keep failing
are cut short by the breaker of ``health.py``. Every try appends an Attempt, so a failed asset
still says what happened on each route, and ``pick_error`` chooses the headline. The last
route, ``wayback``, recovers a capture when the original proved gone (wayback.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from archiver.errors import (
    Blocked,
    FetchError,
    HostDown,
    HTTPPermanent,
    HTTPTransient,
    NameNotFound,
    NotMedia,
    PermanentFetchError,
    Placeholder,
    TimedOut,
    TooLarge,
    TransientFetchError,
    Truncated,
    Unsupported,
    http_error,
)
from archiver.fetch.base import Blob, Fetched
from archiver.fetch.decode import ACCEPT_ENCODING, decode, parse_encodings
from archiver.fetch.exchange import capture
from archiver.fetch.facts import image_facts
from archiver.fetch.get import Getter, Response
from archiver.fetch.guard import Guard
from archiver.fetch.health import HostHealth
from archiver.fetch.hops import try_timeouts
from archiver.fetch.lean import Pool
from archiver.fetch.limits import HostLimiter, LocalHostLimiter
from archiver.fetch.retry import backoff, parse_retry_after
from archiver.fetch.sniff import (
    HEAD_BYTES,
    is_media_for,
    looks_like_text_or_html,
    recordable_kinds,
    recorded_kind,
    sniff,
)
from archiver.fetch.spool import Spooler
from archiver.fetch.tls import LazyTLS
from archiver.fetch.wayback import Wayback, is_placeholder, worth_recovering
from archiver.models import Asset, Attempt, now_iso
from archiver.plan.routes import Route, plan_routes
from archiver.settings import Settings
from archiver.urls.kinds import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, extension
from archiver.urls.vqq import canonical_video

if TYPE_CHECKING:  # httpx (transport.py) is loaded by the first request that takes its path:
    import httpx  # fetch.lean_http off, an egress proxy, the Wayback Machine

    from archiver.fetch.get import Answer

# The video-kind assets fetched here rather than by yt-dlp: files by their extension (the
# scanner's video and sound extensions, one list: ``urls.kinds``; an HLS playlist is not the
# video, so it is left alone), and URLs that name no file type (``<video src=/stream?id=3>``),
# whose bytes must show them to be media. v.qq.com pages are yt-dlp's.
DIRECT_FILES = (VIDEO_EXTENSIONS | AUDIO_EXTENSIONS) - {".m3u8"}
# A video asset whose URL names a file of another type (a page: .html, .php; an image; the
# playlist) is no file to fetch directly.
_NAMED_FILES = frozenset({".html", ".htm", ".shtml", ".php", ".asp", ".aspx", ".jsp", ".m3u8"}
                         | IMAGE_EXTENSIONS)
# Statuses whose Retry-After means "the whole host is busy", so other threads wait too.
HOST_PAUSE_STATUSES = (429, 503)
# "*/*": asking for image/webp or image/avif lets CDNs transcode; we want the origin's bytes.
ACCEPT = "*/*"


class HttpFetcher:
    """Fetcher for images, GIFs and direct video files over http(s)."""

    name = "http"
    example_urls: tuple[str, ...] = (
        "http://zkres1.myzaker.com/201907/5d2d8a9c77ac6444da0067a3_1024.jpg",
        "https://static.cnbetacdn.com/article/2019/0716/8c5ac6e0aa1c3c4.gif",
        "https://example.com/media/clip.mp4",
    )

    def __init__(
        self,
        settings: Settings,
        limiter: HostLimiter | None = None,
        guard: Guard | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.fs = settings.fetch
        self.guard = guard or Guard(self.fs.allow_private, self.fs.connect_to)
        self.limiter: HostLimiter = limiter or LocalHostLimiter(settings)
        self.health = HostHealth(self.fs.host_down_after, self.fs.host_down_cooldown, clock)
        self.wayback = Wayback(settings, lambda: self.client, self.limiter, self.health, sleep,
                               clock)
        self._sleep = sleep
        self._clock = clock
        # One client (connection pool) per thread: httpcore's pool assigns every request under
        # one lock, scanning all its connections, which serialised 32 threads on one pool.
        self._tls = LazyTLS(self.fs)  # shared by every thread's client, made when needed
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        # The lean path (fetch.lean_http): one pool shared by every thread, O(1) per request.
        self.pool = Pool(self.guard, self._tls)
        self.getter = Getter(self.fs, self.guard, self.pool, lambda: self.client)

    @property
    def client(self) -> httpx.Client:
        """This thread's client."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            from archiver.fetch.transport import build_client

            client = self._local.client = build_client(self.fs, self.guard, self._tls.context())
            with self._clients_lock:
                self._clients.append(client)
        return client

    def matches(self, asset: Asset) -> bool:
        try:
            parts = urlsplit(asset.origin)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https"):
            return False
        if asset.kind == "video":
            ext = extension(asset.origin)
            return ext in DIRECT_FILES or (ext not in _NAMED_FILES
                                           and canonical_video(asset.origin) is None)
        return True

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self.pool.close()

    def fetch(self, asset: Asset, attempts: list[Attempt]) -> Fetched:
        """Fetch ``asset`` over its routes. Raises a transient FetchError when any route failed
        transiently (a later run may succeed), else the most telling permanent one."""
        deadline = self._clock() + self.fs.deadline
        routes = plan_routes(asset, self.settings)
        if not routes:
            raise Unsupported(f"no route to fetch {asset.origin}")
        tried: list[tuple[str, FetchError]] = []
        for route in routes:
            try:
                if route.name == "wayback":  # its own deadline; only for an original gone
                    if worth_recovering(tried):
                        return self.wayback.recover(asset, route, attempts, self._fetch_route)
                elif route.name == "alternate":  # a thumbnail, only for an original gone
                    if worth_recovering(tried) and self._clock() < deadline:
                        fetched = self._fetch_route(asset, route, attempts, deadline)
                        fetched.facts["alternate"] = route.url
                        return fetched
                elif self._clock() < deadline:
                    return self._fetch_route(asset, route, attempts, deadline)
            except TooLarge:
                raise
            except FetchError as exc:
                if route.name == "wayback" and exc.retryable:
                    raise  # the original is gone and its capture is worth waiting for
                tried.append((route.name, exc))
        raise pick_error([exc for _, exc in tried])

    def _fetch_route(
        self, asset: Asset, route: Route, attempts: list[Attempt], deadline: float
    ) -> Fetched:
        tries = 1 + max(0, self.fs.retries)
        host = urlsplit(route.url).hostname or ""
        for n in range(1, tries + 1):
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise TimedOut(f"deadline of {self.fs.deadline}s for the asset passed")
            started, at = self._clock(), now_iso()
            try:
                self.health.check(host)  # a host down, or a name not found, fails at once
                try:
                    fetched = self._try(asset, route, started + remaining)
                except FetchError as exc:
                    self.health.failed(host, exc)
                    raise
                self.health.answered(host)
            except FetchError as exc:
                status = exc.details.get("status")
                attempts.append(
                    Attempt(
                        route.name,
                        route.url,
                        status if isinstance(status, int) else None,
                        exc.to_dict(),
                        round(self._clock() - started, 3),
                        at,
                    )
                )
                # A stall is not retried on the same route: the deadline is better spent on the
                # next route (a later run tries again).
                if not isinstance(exc, TransientFetchError) or n == tries or isinstance(
                        exc, (TimedOut, HostDown)):
                    raise
                self._wait_before_retry(exc, route, n, deadline)
                continue
            attempts.append(
                Attempt(
                    route.name,
                    route.url,
                    fetched.http_status,
                    None,
                    round(self._clock() - started, 3),
                    at,
                )
            )
            return fetched
        raise AssertionError("unreachable: the last try returns or raises")

    def _wait_before_retry(
        self, exc: TransientFetchError, route: Route, n: int, deadline: float
    ) -> None:
        if exc.retry_after is not None:
            wait = exc.retry_after
            if exc.details.get("status") in HOST_PAUSE_STATUSES:
                self.limiter.pause(urlsplit(route.url).hostname or "", wait)
        else:
            wait = backoff(n, self.fs.backoff_base, self.fs.backoff_max)
        if self._clock() + wait >= deadline:
            raise exc  # waiting would outlive the asset's deadline: fail this route now
        self._sleep(wait)

    def _try(self, asset: Asset, route: Route, deadline: float) -> Fetched:
        """One request of one route, streamed into a Blob."""
        remaining = max(0.001, deadline - self._clock())
        timeout = try_timeouts(self.fs, remaining)
        # No Referer on any route: hotlink protection refuses foreign referers, and the
        # proxies an article used do not need one.
        headers = {"User-Agent": self.fs.user_agent, "Accept": ACCEPT,
                   "Accept-Encoding": ACCEPT_ENCODING}
        stream: AbstractContextManager[Answer]
        if self.fs.lean_http:
            stream = self.getter.open(route.url, headers, self.fs.max_redirects,
                                      self.limiter.slot, timeout)
        else:
            from archiver.fetch.transport import httpx_timeout, open_stream

            stream = open_stream(self.client, route.url, headers, self.fs.max_redirects,
                                 slot=self.limiter.slot, timeout=httpx_timeout(timeout))
        with stream as resp:
            status = resp.status_code
            if status not in (200, 203):
                retry_after = parse_retry_after(
                    resp.headers.get("retry-after"), self.fs.retry_after_max
                )
                if status < 300:
                    raise NotMedia(f"HTTP {status} carries no media", status=status)
                raise http_error(status, retry_after)
            if is_placeholder(route.url, str(resp.url), self.fs.placeholders):
                raise Placeholder(f"redirected to {str(resp.url)[:200]}, a stand-in for the file",
                                  status=status, url=str(resp.url)[:500])
            # The deadline bounds the wait for a response; a streaming body has its own.
            blob = self._read_body(asset, resp, self._clock() + self.fs.download_deadline)
            final_url = str(resp.url)
            # the WARC export's request and response headers
            exchange = resp.exchange() if isinstance(resp, Response) else capture(resp)
        try:
            facts = image_facts(blob.file, blob.media_type, self.fs.max_pixels)
        except BaseException:
            blob.close()
            raise
        return Fetched(blob=blob, route=route.name, url=final_url, http_status=status, facts=facts,
                       exchange=exchange)

    def _read_body(self, asset: Asset, resp: Answer, deadline: float) -> Blob:
        # The cap is that of the kind the asset is recorded as, which for an image or GIF at
        # an extensionless URL only its bytes tell: until its first bytes are sniffed, the
        # largest of the kinds it may be (a GIF's, not a still's); from then on, its own.
        kinds = recordable_kinds(asset.kind, asset.origin)
        cap = max(self.fs.max_bytes(kind) for kind in kinds)
        length = _content_length(resp)
        _check_length(length, cap, " or ".join(kinds), resp.status_code)
        encodings = parse_encodings(resp.headers.get_list("content-encoding"))
        spooler = Spooler(cap, self.fs.spool_memory)
        received = 0
        wire_cap = _wire_cap(cap)

        def raw() -> Iterator[bytes]:
            nonlocal received
            for piece in resp.iter_raw():
                received += len(piece)
                if received > wire_cap:
                    raise TooLarge(f"more than {wire_cap} bytes received for a {cap}-byte cap",
                                   status=resp.status_code, cap=cap)
                yield piece
                if self._clock() > deadline:
                    raise TimedOut(f"deadline passed after {received} bytes received")

        def typed() -> None:
            # The body's type, from its first bytes: not media stops here, and its kind's cap
            # holds from here on (the declared length too).
            nonlocal cap, wire_cap
            media_type = _check_media(asset.kind, spooler.head, resp.status_code)
            kind = recorded_kind(asset.kind, asset.origin, media_type)
            own = self.fs.max_bytes(kind)
            if own < cap:
                cap, wire_cap = own, _wire_cap(own)
                _check_length(length, cap, kind, resp.status_code)
                spooler.limit(cap)

        try:
            checked = False
            # Decoded here, in bounded steps, so the cap holds inside decompression.
            for chunk in decode(raw(), encodings):
                spooler.write(chunk)
                if not checked and len(spooler.head) >= HEAD_BYTES:
                    # Stop early on an HTML error page instead of downloading all of it.
                    typed()
                    checked = True
            if not checked:
                typed()
            # Content-Length counts the bytes on the wire, encoded or not.
            if length is not None and received < length:
                raise Truncated(
                    f"got {received} of {length} bytes",
                    status=resp.status_code,
                    size=received,
                    expected=length,
                )
        except BaseException:
            spooler.discard()
            raise
        return spooler.finish()


def _wire_cap(cap: int) -> int:
    """The bytes received for a ``cap`` on decoded bytes: a gzip stream followed by garbage,
    or endless empty gzip members, decodes to nothing; deflate grows incompressible data by
    well under 1%."""
    return cap + cap // 100 + 65536


def _check_length(length: int | None, cap: int, kind: str, status: int) -> None:
    """TooLarge when the declared Content-Length is over ``cap``, before any byte is read."""
    if length is not None and length > cap:
        raise TooLarge(f"Content-Length {length} exceeds the {cap}-byte cap for {kind}",
                       status=status, size=length, cap=cap)


def _content_length(resp: Answer) -> int | None:
    raw = resp.headers.get("content-length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def _check_media(kind: str, head: bytes, status: int) -> str:
    """The media type ``head`` sniffs as; NotMedia unless it is acceptable for ``kind``."""
    found = sniff(head)
    if found is None:
        what = "an HTML or text page" if looks_like_text_or_html(head) else "unknown bytes"
        raise NotMedia(f"expected {kind}, got {what}", status=status)
    if not is_media_for(kind, found[0]):
        raise NotMedia(f"expected {kind}, got {found[0]}", status=status, media_type=found[0])
    return found[0]


def _rank(exc: FetchError) -> int:
    """How much an error tells about the asset itself (higher is more telling): a server's own
    answer (a refusal, 404/410, not media, an error status) over a host that could not be
    reached or stalled (where the earliest route, the origin, wins), over the breaker, which
    only repeats an earlier failure."""
    if isinstance(exc, Blocked):
        return 7
    if isinstance(exc, TooLarge) or (isinstance(exc, HTTPPermanent) and exc.status in (404, 410)):
        return 6
    if isinstance(exc, NotMedia):
        return 5
    if isinstance(exc, PermanentFetchError) and not isinstance(exc, NameNotFound):
        return 4  # 403 and other 4xx, redirects, unsupported
    if isinstance(exc, HTTPTransient):
        return 3  # 5xx, 429: the server answered
    if isinstance(exc, Truncated):
        return 2
    if isinstance(exc, HostDown):
        return 0
    return 1  # dns, timeout, connect: a stalled origin stays a timeout behind a dead proxy


def pick_error(errors: list[FetchError]) -> FetchError:
    """The headline error when every route failed: the most telling one (``_rank``), the
    earliest route winning ties, so the origin's own 404 is not hidden behind a proxy that
    could not be reached. Every attempt stays in the record either way."""
    if not errors:
        return Unsupported("no route was tried")
    return max(errors, key=_rank)  # max keeps the first of equals
