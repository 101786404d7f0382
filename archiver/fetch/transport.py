"""The httpx client behind the SSRF guard, and the one boundary where httpx errors are mapped.

Every direct connection goes through ``GuardedBackend`` (resolve once, check, connect to the
checked address). Redirects are followed by hand (``hops.follow``, the lean path's loop too),
one hop at a time, so every hop is checked by the guard, counted against ``max_redirects`` and
restricted to http/https.

An egress proxy (``fetch.rule_for(host).egress_proxy`` for the host being requested) is
operator-configured, so its own address is not checked. The target host is still resolved and
checked before each request so the policy holds; the proxy then resolves the name again by
itself, so a DNS answer that changes between our check and its lookup (rebinding) is not
covered: that gap is inherent to proxying by name and is why the proxy must be trusted.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import httpcore
import httpx

from archiver.errors import (
    Blocked,
    ConfigError,
    ConnectFailed,
    FetchError,
    TimedOut,
    TransientFetchError,
    Truncated,
)
from archiver.fetch import wire
from archiver.fetch.guard import Guard
from archiver.fetch.hops import Slot, Timeouts, follow
from archiver.fetch.tls import ssl_context
from archiver.settings import FetchSettings

SCHEMES = ("http", "https")
MAX_CONNECTIONS = 100


class GuardedBackend(httpcore.SyncBackend):
    """httpcore network backend that applies the Guard to every TCP connection it opens."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        thost, tport = self.guard.target(host, port)
        started = time.monotonic()
        addresses = self.guard.resolve(thost, tport, timeout)
        if timeout is not None:  # the lookup's share
            timeout = max(0.001, timeout - (time.monotonic() - started))
        error: Exception | None = None
        for address in addresses:
            try:
                return AckingStream(super().connect_tcp(address, tport, timeout, local_address,
                                                        socket_options))
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error


class AckingStream(httpcore.NetworkStream):
    """httpcore's stream, each read preceded by an immediate-acknowledgement request, as the
    lean path's reads are (``wire.acking_recv``: a server with Nagle's algorithm on would
    otherwise make each small answer on a kept-alive connection wait 40 ms)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._sock = stream.get_extra_info("socket")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._sock is not None:
            wire.ack_now(self._sock)
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return AckingStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore pools: one guarded direct pool, one pool per proxy."""

    def __init__(self, fs: FetchSettings, guard: Guard,
                 tls: ssl.SSLContext | None = None) -> None:
        self.fs = fs
        self.guard = guard
        self._ssl = tls or ssl_context(fs)
        self._direct = httpcore.ConnectionPool(
            ssl_context=self._ssl,
            max_connections=MAX_CONNECTIONS,
            network_backend=GuardedBackend(guard),
        )
        self._proxies: dict[str, httpcore.ConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool_for(self, host: str) -> tuple[httpcore.ConnectionPool, bool]:
        proxy = self.fs.rule_for(host).egress_proxy
        if proxy is None:
            return self._direct, False
        with self._lock:
            pool = self._proxies.get(proxy)
            if pool is None:
                pool = self._proxies[proxy] = self._make_proxy_pool(proxy)
        return pool, True

    def _make_proxy_pool(self, url: str) -> httpcore.ConnectionPool:
        proxy = httpx.Proxy(url)
        target = httpcore.URL(
            scheme=proxy.url.raw_scheme,
            host=proxy.url.raw_host,
            port=proxy.url.port,
            target=proxy.url.raw_path,
        )
        if proxy.url.scheme in ("http", "https"):
            return httpcore.HTTPProxy(
                proxy_url=target,
                proxy_auth=proxy.raw_auth,
                proxy_headers=proxy.headers.raw,
                ssl_context=self._ssl,
                max_connections=MAX_CONNECTIONS,
            )
        if proxy.url.scheme in ("socks5", "socks5h"):
            return httpcore.SOCKSProxy(
                proxy_url=target,
                proxy_auth=proxy.raw_auth,
                ssl_context=self._ssl,
                max_connections=MAX_CONNECTIONS,
            )
        raise ConfigError(f"unsupported egress proxy scheme in {url!r}")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        host = request.url.host
        pool, proxied = self._pool_for(host)
        if proxied:
            self.guard.check_url_host(host, request.url.port or _default_port(request.url),
                                      request.extensions.get("timeout", {}).get("connect"))
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with mapped_errors():
            resp = pool.handle_request(req)
        assert not isinstance(resp.stream, bytes)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Stream(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._direct.close()
        for pool in self._proxies.values():
            pool.close()


class _Stream(httpx.SyncByteStream):
    """The response body; a connection dropped mid-body is a truncation (transient)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with mapped_errors(body=True):
            yield from self._inner

    def close(self) -> None:
        if hasattr(self._inner, "close"):
            self._inner.close()


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


@contextmanager
def mapped_errors(body: bool = False) -> Iterator[None]:
    """Map httpcore/httpx exceptions to archiver.errors (the one boundary, chained)."""
    try:
        yield
    except FetchError:
        raise
    except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
        raise TimedOut(f"timed out: {type(exc).__name__}") from exc
    except (httpcore.RemoteProtocolError, httpx.RemoteProtocolError) as exc:
        if body:
            raise Truncated(f"body ended early: {exc}") from exc
        raise ConnectFailed(f"protocol error: {exc}") from exc
    except (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol) as exc:
        raise Blocked(f"unsupported scheme: {exc}") from exc
    except httpx.InvalidURL as exc:
        raise Blocked(f"invalid URL refused: {exc}") from exc
    except httpx.DecodingError as exc:
        raise TransientFetchError(f"content decoding failed: {exc}") from exc
    except (
        httpcore.NetworkError,
        httpcore.ProxyError,
        httpcore.ProtocolError,
        httpx.TransportError,
    ) as exc:
        if body:
            raise Truncated(f"body interrupted: {exc}") from exc
        raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc


def build_client(fs: FetchSettings, guard: Guard,
                 tls: ssl.SSLContext | None = None) -> httpx.Client:
    """An httpx.Client whose every connection is guarded; it never follows redirects by itself
    and ignores proxy environment variables (egress proxies come from settings only). ``tls``
    lets clients share one SSL context (loading the CA store costs CPU and about a MB each)."""
    timeout = httpx.Timeout(
        connect=fs.connect_timeout, read=fs.read_timeout, write=fs.read_timeout, pool=fs.deadline
    )
    return httpx.Client(
        transport=GuardedTransport(fs, guard, tls),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def check_scheme(url: httpx.URL | str) -> httpx.URL:
    """The parsed URL, or Blocked when it is not http(s) or does not parse."""
    try:
        with mapped_errors():
            parsed = httpx.URL(url) if isinstance(url, str) else url
        host = parsed.host  # decoded from IDNA here
    except UnicodeError as exc:  # a host that is not valid IDNA (idna.IDNAError)
        raise Blocked(f"invalid host refused: {exc}", url=str(url)[:500]) from exc
    if parsed.scheme not in SCHEMES or not host:
        raise Blocked(f"scheme or host not allowed: {str(parsed)[:200]}", url=str(parsed)[:500])
    return parsed


def httpx_timeout(t: Timeouts) -> httpx.Timeout:
    """A try's timeouts as httpx takes them."""
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)


@contextmanager
def open_stream(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    max_redirects: int,
    slot: Slot | None = None,
    timeout: httpx.Timeout | None = None,
) -> Iterator[httpx.Response]:
    """GET ``url`` following up to ``max_redirects`` redirects by hand (``hops.follow``, one
    ``send_hop`` each); yields the final response with its body unread (stream it inside the
    ``with``). Raises Blocked, TooManyRedirects or a mapped transport error."""
    with follow(url, max_redirects,
                lambda hop: send_hop(client, hop, headers, slot, timeout)) as response:
        yield response


@contextmanager
def send_hop(client: httpx.Client, url: str, headers: dict[str, str], slot: Slot | None,
             timeout: httpx.Timeout | None) -> Iterator[httpx.Response]:
    """One GET of ``url`` (http/https only) on httpx, under ``slot(host)``, not following a
    redirect; the response, its body unread, is closed when the ``with`` ends."""
    current = check_scheme(url)
    with slot(current.host) if slot else nullcontext():
        with mapped_errors():
            request = client.build_request(
                "GET", current, headers=headers, timeout=timeout or client.timeout
            )
            response = client.send(request, stream=True)
        try:
            yield response
        finally:
            response.close()
