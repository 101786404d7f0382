"""The fetcher's GET: the lean path (lean.py) for direct requests, httpx for egress proxies.

``Getter.open`` follows redirects by hand with the loop ``transport.open_stream`` uses
(``hops.follow``): every hop is split and checked again (http/https only), counted against
``max_redirects``, and made under the host's concurrency slot, released before the next hop.
Each hop takes its host's transport: one that goes through an egress proxy (HTTP or SOCKS) is
sent on httpx, the others on the lean path.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from archiver.errors import (
    Blocked,
    ConnectFailed,
    FetchError,
    TimedOut,
    Truncated,
)
from archiver.fetch.exchange import exchange_of
from archiver.fetch.guard import Guard
from archiver.fetch.hops import Slot, Timeouts, follow
from archiver.fetch.lean import Conn, Pool, Target, split_url
from archiver.fetch.wire import Body, Fields, Head, ProtocolError, read_head, request_bytes
from archiver.settings import FetchSettings

if TYPE_CHECKING:  # httpx is loaded only by a hop through an egress proxy, or a redirect
    import httpx

# A read or write past its timeout: Python's (TLS) or the kernel's (plain TCP: EAGAIN).
TIMEOUTS = (TimeoutError, BlockingIOError)


class _Stale(Exception):
    """A reused connection failed before anything was received on it: try a fresh one."""


class Headers:
    """A response's fields as received (order and case kept, for the record's exchange),
    looked up by name."""

    __slots__ = ("raw",)

    def __init__(self, raw: Fields) -> None:
        self.raw = raw

    def get_list(self, name: str) -> list[str]:
        key = name.lower().encode("ascii")
        return [_text(v) for n, v in self.raw if n.lower() == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_list(name)
        return ", ".join(values) if values else default


def _text(value: bytes) -> str:
    """A field value as httpx decodes it: UTF-8 (ASCII included), else Latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class Response:
    """A response whose body is unread: ``iter_raw`` streams it (not decoded); ``close``
    gives the connection back when the body was read to its end, else closes it."""

    def __init__(self, pool: Pool, conn: Conn, t: Target, sent: Fields, head: Head,
                 buf: bytes) -> None:
        self._pool = pool
        self._conn: Conn | None = conn
        self._body = Body(head, buf, conn.recv)
        self.target = t
        self.url = t.url
        self.sent = sent
        self.status_code = head.status
        self.reason_phrase = head.reason.decode("latin-1")
        self.http_version = "HTTP/" + head.version.decode("ascii")
        self.headers = Headers(head.fields)

    def iter_raw(self) -> Iterator[bytes]:
        if self._conn is None:
            return
        try:
            yield from self._body.chunks()
        except TIMEOUTS as exc:
            raise TimedOut("timed out: ReadTimeout") from exc
        except ProtocolError as exc:
            raise Truncated(f"body ended early: {exc}") from exc
        except OSError as exc:
            raise Truncated(f"body interrupted: {type(exc).__name__}: {exc}") from exc
        self.close()

    def close(self) -> None:
        """Give the connection back when the response is complete (read, or all of it in the
        buffer) and nothing came past its end, else close it (a body not read to its end, an
        error, bytes past its framing)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        body = self._body
        if body.settled() and body.head.keep_alive and not body.rest:
            self._pool.give_back(conn)
        else:
            conn.close()

    def exchange(self) -> dict[str, Any]:
        return exchange_of("GET", self.target.target, self.sent, self.http_version,
                           self.status_code, self.reason_phrase, self.headers.raw)


def request(pool: Pool, t: Target, fields: Fields, connect_timeout: float,
            read_timeout: float, deadline: float) -> Response:
    """GET ``t``; the response with its head read by ``deadline`` (time.monotonic), its body
    unread. A pooled connection found closed before anything came back is replaced once."""
    try:
        data = request_bytes(t.target, t.authority, fields)
    except ValueError as exc:
        raise Blocked(f"invalid request refused: {exc}") from exc
    sent = [(b"Host", t.authority), *fields]
    conn = pool.take((t.scheme, t.host, t.port))
    if conn is not None:
        try:
            return _exchange(pool, conn, t, data, sent, read_timeout, deadline)
        except _Stale:
            pass  # the server closed it while idle: one fresh connection
    return _exchange(pool, pool.connect(t, connect_timeout), t, data, sent, read_timeout,
                     deadline)


def _exchange(pool: Pool, conn: Conn, t: Target, data: bytes, sent: Fields,
              read_timeout: float, deadline: float) -> Response:
    try:
        conn.settimeout(read_timeout)
        try:
            conn.sock.sendall(data)
        except (ConnectionError, ssl.SSLEOFError) as exc:
            raise ProtocolError(f"{type(exc).__name__}: {exc}", received=False) from exc
        head, buf = read_head(conn.buf, conn.recv, deadline, time.monotonic)
        conn.buf = b""
        return Response(pool, conn, t, sent, head, buf)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, FetchError):
            raise
        if isinstance(exc, ProtocolError):
            if conn.reused and not exc.received:
                raise _Stale() from exc
            raise ConnectFailed(f"protocol error: {exc}") from exc
        if isinstance(exc, TIMEOUTS):
            raise TimedOut("timed out: ReadTimeout") from exc
        if isinstance(exc, OSError):
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        raise


if TYPE_CHECKING:
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
             timeout: Timeouts) -> Iterator[Answer]:
        """GET ``url`` following up to ``max_redirects`` redirects (``hops.follow``, one
        ``_hop`` each); yields the final response with its body unread. ``timeout.pool`` is
        the time left for a response to start."""
        sent = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        connect = _seconds(timeout.connect)
        read = _seconds(timeout.read)
        deadline = time.monotonic() + _seconds(timeout.pool)

        def hop(hop_url: str) -> AbstractContextManager[Answer]:
            return self._hop(hop_url, headers, sent, slot, timeout, connect, read, deadline)

        with follow(url, max_redirects, hop) as answer:
            yield answer

    @contextmanager
    def _hop(self, url: str, headers: dict[str, str], sent: Fields, slot: Slot,
             timeout: Timeouts, connect: float, read: float, deadline: float
             ) -> Iterator[Answer]:
        """One GET of ``url``, on the lean path under ``slot(host)``, or on httpx's when the
        host goes through an egress proxy; the response is closed when the ``with`` ends."""
        t = split_url(url)
        if self.proxied(t.host):
            from archiver.fetch.transport import httpx_timeout, send_hop

            with send_hop(self._client(), t.url, headers, slot, httpx_timeout(timeout)) as hop:
                yield hop
            return
        with slot(t.host):
            response = request(self.pool, t, sent, connect, read, deadline)
            try:
                yield response
            finally:
                response.close()


def _seconds(value: float | None) -> float:
    return 3600.0 if value is None else max(0.001, value)
