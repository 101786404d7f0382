"""The fetcher's GET: the lean path (lean.py) for direct requests, httpx for egress proxies.

``Getter.open`` follows redirects by hand as ``transport.open_stream`` does: every hop is split
and checked again (http/https only), counted against ``max_redirects``, and made under the
host's concurrency slot, released before the next hop. A hop to a host that goes through an
egress proxy (HTTP or SOCKS) continues on the httpx transport, with the redirects left.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import h11
import httpx

from archiver.errors import (
    Blocked,
    ConnectFailed,
    FetchError,
    TimedOut,
    TooManyRedirects,
    Truncated,
)
from archiver.fetch.exchange import exchange_of
from archiver.fetch.guard import Guard
from archiver.fetch.lean import MAX_HEAD_BYTES, MAX_HEADERS, RECV, Conn, Pool, Target, split_url
from archiver.fetch.transport import Slot, location_of, open_stream
from archiver.settings import FetchSettings

# What a server closing an idle keep-alive connection looks like: EOF before any response byte
# (h11 reports it as a protocol error), a reset, a broken pipe.
_STALE_SIGNS = (h11.RemoteProtocolError, ConnectionError, ssl.SSLEOFError)


class _Stale(Exception):
    """A reused connection failed before anything was received on it: try a fresh one."""


class Headers:
    """A response's headers: lookups by lowercased name (h11 gives both forms), the raw list
    in the server's order and case for the record's exchange."""

    __slots__ = ("_lower", "raw")

    def __init__(self, event: h11.Response) -> None:
        self._lower = event.headers
        self.raw: list[tuple[bytes, bytes]] = list(event.headers.raw_items())

    def get_list(self, name: str) -> list[str]:
        key = name.lower().encode("ascii")
        return [_text(v) for k, v in self._lower if k == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_list(name)
        return ", ".join(values) if values else default


def _text(value: bytes) -> str:
    """A header value as httpx decodes it: ASCII, else UTF-8, else Latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class Response:
    """A response whose body is unread: ``iter_raw`` streams it (not decoded); ``close``
    gives the connection back when the body was read to its end, else closes it."""

    def __init__(self, pool: Pool, conn: Conn, t: Target, sent: list[tuple[bytes, bytes]],
                 event: h11.Response) -> None:
        self._pool = pool
        self._conn: Conn | None = conn
        self.target = t
        self.url = t.url
        self.sent = sent
        self.status_code = event.status_code
        self.reason_phrase = event.reason.decode("ascii", errors="ignore")
        self.http_version = "HTTP/" + event.http_version.decode("ascii")
        self.headers = Headers(event)

    def iter_raw(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        h = conn.h11
        recv = conn.sock.recv
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    h.receive_data(recv(RECV))
                elif type(event) is h11.Data:
                    data = event.data
                    yield data if type(data) is bytes else bytes(data)
                elif type(event) is h11.EndOfMessage:
                    break
                else:
                    raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        except FetchError:
            raise
        except TimeoutError as exc:
            raise TimedOut("timed out: ReadTimeout") from exc
        except h11.RemoteProtocolError as exc:
            raise Truncated(f"body ended early: {exc}") from exc
        except OSError as exc:
            raise Truncated(f"body interrupted: {type(exc).__name__}: {exc}") from exc
        self.close()

    def close(self) -> None:
        """Give the connection back when its exchange is complete and nothing more came on it,
        else close it (a body not read to its end, an error, bytes past the framing)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        h = conn.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE and not h.trailing_data[0]:
            h.start_next_cycle()
            self._pool.give_back(conn)
        else:
            conn.close()

    def exchange(self) -> dict[str, Any]:
        return exchange_of("GET", self.target.target, self.sent, self.http_version,
                           self.status_code, self.reason_phrase, self.headers.raw)


def _check_head(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Refuse a head over MAX_HEAD_BYTES or MAX_HEADERS (h11 bounds only a head still
    incomplete, and a fast server's fits one read), and a response with both Content-Length
    and Transfer-Encoding: h11 would let the chunked framing win (RFC 9112 6.3), but two
    framings that disagree are how responses are split or smuggled."""
    size = count = 0
    names = set()
    for name, value in headers:
        size += len(name) + len(value) + 4
        count += 1
        names.add(name)
    if size > MAX_HEAD_BYTES or count > MAX_HEADERS:
        raise h11.RemoteProtocolError(f"response head too large ({count} headers, {size} bytes)")
    if b"content-length" in names and b"transfer-encoding" in names:
        raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding")


def request(pool: Pool, t: Target, headers: list[tuple[bytes, bytes]], connect_timeout: float,
            read_timeout: float, deadline: float) -> Response:
    """GET ``t``; the response with its head read by ``deadline`` (time.monotonic), its body
    unread. A pooled connection found closed before anything came back is replaced once."""
    sent = [(b"Host", t.authority), *headers]
    key = (t.scheme, t.host, t.port)
    try:
        req = h11.Request(method="GET", target=t.target, headers=sent)
    except h11.LocalProtocolError as exc:
        raise Blocked(f"invalid request refused: {exc}") from exc
    conn = pool.take(key)
    if conn is not None:
        try:
            return _exchange(pool, conn, t, req, sent, read_timeout, deadline)
        except _Stale:
            pass  # the server closed it while idle: one fresh connection
    return _exchange(pool, pool.connect(t, connect_timeout), t, req, sent, read_timeout,
                     deadline)


def _exchange(pool: Pool, conn: Conn, t: Target, req: h11.Request,
              sent: list[tuple[bytes, bytes]], read_timeout: float, deadline: float) -> Response:
    h = conn.h11
    received = False
    try:
        conn.settimeout(read_timeout)
        conn.sock.sendall(h.send(req) + (h.send(h11.EndOfMessage()) or b""))
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                if time.monotonic() > deadline:
                    raise TimedOut("deadline passed while waiting for the response head")
                data = conn.sock.recv(RECV)
                received = received or bool(data)
                h.receive_data(data)
            elif type(event) is h11.Response:
                _check_head(event.headers)
                return Response(pool, conn, t, sent, event)
            elif type(event) is not h11.InformationalResponse:  # 1xx are skipped
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
    except BaseException as exc:
        conn.close()
        if isinstance(exc, FetchError):
            raise
        if not received and conn.reused and isinstance(exc, _STALE_SIGNS):
            raise _Stale() from exc
        if isinstance(exc, TimeoutError):
            raise TimedOut("timed out: ReadTimeout") from exc
        if isinstance(exc, h11.RemoteProtocolError):
            raise ConnectFailed(f"protocol error: {exc}") from exc
        if isinstance(exc, OSError):
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        raise


Answer = Response | httpx.Response


class Getter:
    """GETs for one fetcher (every thread): one lean pool; ``client()`` gives this thread's
    httpx client for the hops that go through an egress proxy."""

    def __init__(self, fs: FetchSettings, guard: Guard, pool: Pool,
                 client: Callable[[], httpx.Client]) -> None:
        self.fs = fs
        self.pool = pool
        self.guard = guard
        self._client = client

    def proxied(self, host: str) -> bool:
        """True when requests to ``host`` go through an egress proxy."""
        return self.fs.rule_for(host).egress_proxy is not None

    @contextmanager
    def open(self, url: str, headers: dict[str, str], max_redirects: int, slot: Slot,
             timeout: httpx.Timeout) -> Iterator[Answer]:
        """GET ``url`` following up to ``max_redirects`` redirects; yields the final response
        with its body unread. ``timeout.pool`` is the time left for a response to start."""
        sent = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        connect = _seconds(timeout.connect)
        read = _seconds(timeout.read)
        deadline = time.monotonic() + _seconds(timeout.pool)
        current = split_url(url)
        hops = 0
        while True:
            if self.proxied(current.host):
                with open_stream(self._client(), current.url, headers, max_redirects - hops,
                                 slot=slot, timeout=timeout) as answer:
                    yield answer
                return
            with slot(current.host):
                response = request(self.pool, current, sent, connect, read, deadline)
                location = _redirect(response)
                if location is None:
                    try:
                        yield response
                    finally:
                        response.close()
                    return
            hops += 1
            if hops > max_redirects:
                raise TooManyRedirects(f"more than {max_redirects} redirects", url=current.url)
            current = _join(current, location)


def _redirect(response: Response) -> str | None:
    """Where ``response`` redirects to (its connection then given back or closed), or None
    when it is the answer."""
    location = location_of(response.status_code, response.headers.get("location"))
    if location is not None:
        response.close()
    return location


def _join(current: Target, location: str) -> Target:
    """The next hop, joined as httpx joins (a redirect is rare enough for its parser)."""
    try:
        joined = httpx.URL(current.url).join(location)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise Blocked(f"invalid URL refused: {exc}") from exc
    return split_url(str(joined))


def _seconds(value: float | None) -> float:
    return 3600.0 if value is None else max(0.001, value)
