"""A lean HTTP/1.1 client for the common fetch: a plain GET to an origin, no egress proxy.
This module splits URLs and keeps the connections; get.py makes the requests.

httpx and httpcore cost about a millisecond of CPU per small asset (URL and header models,
a pool that scans every connection and polls the socket on each reuse, traces and context
managers). Here one request is: a URL split by one regular expression (anything unusual goes
through httpx's parser), an idle connection popped from a stack keyed by (scheme, host, port),
the request written and the response read by wire.py (strict, checked against h11), and the
socket.

The guarantees are the same as on the httpx path, enforced here:

- every new connection goes through the Guard (connect-to mapping, one resolution, every
  address checked, the socket opened to the checked address), redirects are followed by the
  caller (``get.py``), so every hop is checked and counted;
- TLS verifies with the fetcher's context (certifi or ``ca_bundle``) and sends SNI and checks
  the certificate for the URL's host;
- connect and read timeouts on the socket; no read of a response head starts after the try's
  deadline (a server dripping header bytes holds a request at most one read timeout past it);
- wire.py frames the body strictly (Content-Length, chunked, or to the close; conflicting
  lengths, codings other than chunked, and both framings at once refused), bounds the head
  and refuses a request target or field that could split the request; the body is returned
  raw, decoded and capped by the fetcher;
- a pooled connection that the server closed while it was idle is retried once on a fresh
  connection, only when nothing at all was received on it; a connection idle for a while is
  checked before it is reused and dropped after ``KEEPALIVE_EXPIRY``.

Errors are archiver.errors codes, as ``transport.mapped_errors`` gives for httpcore's.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from archiver.errors import Blocked, ConnectFailed, TimedOut
from archiver.fetch import wire
from archiver.fetch.guard import Guard

if TYPE_CHECKING:
    from archiver.fetch.tls import LazyTLS

MAX_IDLE_PER_KEY = 64
MAX_IDLE = 256
SWEEP_EVERY = 5.0
KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is kept
CHECK_AFTER = 1.0  # an idle connection older than this is polled for EOF before reuse
DEFAULT_PORTS = {"http": 80, "https": 443}

# A URL that httpx would leave exactly as written: lowercase http(s), a plain host name, no
# explicit port 80/443 (checked after), a path and query of characters httpx does not escape,
# percent escapes well formed, no fragment, no dot segments.
_SIMPLE = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::([0-9]{1,5}))?((?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?)\Z"
)


class Target(NamedTuple):
    """Where one request goes: the URL as httpx would print it, and its parts on the wire."""

    url: str
    scheme: str
    host: str  # IPv6 without brackets
    port: int
    target: bytes  # path and query
    authority: bytes  # the Host header


def split_url(url: str) -> Target:
    """``url`` split for a request. Raises Blocked when it is not http(s), has no host or does
    not parse (as ``transport.check_scheme`` does)."""
    m = _SIMPLE.match(url)
    # (a host ending in a digit may be an IPv4 form that httpx validates or refuses, and
    # httpx decodes punycode labels)
    if m is not None and "/." not in m.group(4) and not m.group(2)[-1].isdigit() \
            and "xn--" not in m.group(2):
        scheme, host, port_text, path = m.groups()
        port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
        if not port_text or (port <= 65535 and port != DEFAULT_PORTS[scheme]):
            authority = f"{host}:{port}" if port_text else host
            return Target(url, scheme, host, port,
                          (path or "/").encode("ascii"), authority.encode("ascii"))
    return _split_with_httpx(url)


def _split_with_httpx(url: str) -> Target:
    import httpx  # an unusual URL only: a run of plain ones never loads httpx

    try:
        parsed = httpx.URL(url)
        scheme, host, shown_url = parsed.scheme, parsed.host, str(parsed)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:  # IDNA errors are ValueErrors
        raise Blocked(f"invalid URL refused: {str(exc)[:200]}") from exc
    if scheme not in DEFAULT_PORTS or not host:
        raise Blocked(f"scheme or host not allowed: {shown_url[:200]}", url=shown_url[:500])
    port = DEFAULT_PORTS[scheme] if parsed.port is None else parsed.port
    raw_host = parsed.raw_host.decode("ascii")
    shown = f"[{raw_host}]" if ":" in raw_host else raw_host
    authority = shown if parsed.port is None else f"{shown}:{port}"
    return Target(shown_url, scheme, raw_host, port, parsed.raw_path, authority.encode("ascii"))


class Conn:
    """One connection: its socket, bytes read past the last response, since when it is idle.

    A plain TCP socket is left blocking and its timeouts are the kernel's (SO_RCVTIMEO,
    SO_SNDTIMEO): a timed-out read or write fails with EAGAIN (BlockingIOError), and each
    read is one system call, where Python's own timeouts poll() before every recv and send.
    A TLS socket keeps Python's timeouts (OpenSSL would read EAGAIN as "want read")."""

    __slots__ = ("buf", "idle_since", "key", "plain", "recv", "reused", "sock", "timeout")

    def __init__(self, sock: socket.socket, key: tuple[str, str, int]) -> None:
        self.sock = sock
        self.recv = wire.acking_recv(sock)  # no 40 ms wait for a Nagled server's last segment
        self.plain = not isinstance(sock, ssl.SSLSocket)
        if self.plain:
            sock.settimeout(None)
        self.buf = b""
        self.key = key
        self.idle_since = 0.0
        self.timeout: float | None = None
        self.reused = False

    def settimeout(self, seconds: float) -> None:
        if seconds == self.timeout:  # each change is a system call or two
            return
        if self.plain:
            wire.kernel_timeouts(self.sock, seconds)
        else:
            self.sock.settimeout(seconds)
        self.timeout = seconds

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _open(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to a checked numeric ``address``, closed on any failure or
    interruption (socket.create_connection closes it on OSError only)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                         socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Pool:
    """Idle connections per (scheme, host, port), a stack each: O(1) to take or give back.
    Shared by the fetcher's threads; a connection belongs to one request at a time. At most
    ``MAX_IDLE_PER_KEY`` idle per key and ``MAX_IDLE`` in all (file descriptors are finite);
    those idle past ``KEEPALIVE_EXPIRY`` are closed when met, and by a sweep at most every
    ``SWEEP_EVERY`` seconds, so the hosts of the start of a long run hold none at its end."""

    def __init__(self, guard: Guard, tls: ssl.SSLContext | LazyTLS) -> None:
        self.guard = guard
        self.tls = tls
        self._idle: dict[tuple[str, str, int], list[Conn]] = {}
        self._count = 0
        self._swept = time.monotonic()
        self._lock = threading.Lock()
        self.opened = 0  # connections made (tests and benchmarks read it)

    def take(self, key: tuple[str, str, int]) -> Conn | None:
        """The most recently used idle connection for ``key`` still worth using, or None."""
        now = time.monotonic()
        drop: list[Conn] = []
        found: Conn | None = None
        with self._lock:
            stack = self._idle.get(key)
            while stack:
                conn = stack.pop()
                self._count -= 1
                if now - conn.idle_since > KEEPALIVE_EXPIRY:
                    drop.append(conn)
                    continue
                found = conn
                break
        if found is not None and now - found.idle_since > CHECK_AFTER \
                and wire.idle_unusable(found.sock):
            drop.append(found)
            found = None
        for conn in drop:
            conn.close()
        return found

    def give_back(self, conn: Conn) -> None:
        now = conn.idle_since = time.monotonic()
        conn.reused = True
        drop: list[Conn] = []
        with self._lock:
            if now - self._swept > SWEEP_EVERY:
                drop = self._sweep(now)
            stack = self._idle.setdefault(conn.key, [])
            if len(stack) < MAX_IDLE_PER_KEY and self._count < MAX_IDLE:
                stack.append(conn)
                self._count += 1
            else:
                drop.append(conn)
        for old in drop:
            old.close()

    def _sweep(self, now: float) -> list[Conn]:
        """Take out every connection idle past KEEPALIVE_EXPIRY (under the lock; the caller
        closes them). A stack is oldest first."""
        self._swept = now
        drop: list[Conn] = []
        for key, stack in list(self._idle.items()):
            fresh = 0
            while fresh < len(stack) and now - stack[fresh].idle_since > KEEPALIVE_EXPIRY:
                fresh += 1
            if fresh:
                drop += stack[:fresh]
                del stack[:fresh]
            if not stack:
                del self._idle[key]
        self._count -= len(drop)
        return drop

    def connect(self, t: Target, timeout: float) -> Conn:
        """A new connection for ``t``: mapped, resolved once, every address checked, opened to
        a checked address; TLS verified for the URL's host. ``timeout`` bounds the lookup and
        then the connection (each address) and TLS handshake with what the lookup left."""
        thost, tport = self.guard.target(t.host, t.port)
        started = time.monotonic()
        addresses = self.guard.resolve(thost, tport, timeout)
        timeout = max(0.001, timeout - (time.monotonic() - started))  # the lookup's share
        error: OSError | None = None
        sock: socket.socket | None = None
        for address in addresses:
            try:
                sock = _open(address, tport, timeout)
                break
            except TimeoutError as exc:
                raise TimedOut("timed out: ConnectTimeout") from exc
            except OSError as exc:
                error = exc
        if sock is None:
            assert error is not None
            raise ConnectFailed(f"ConnectError: {error}") from error
        if t.scheme == "https":
            sock = self._handshake(sock, t.host)
        self.opened += 1
        return Conn(sock, (t.scheme, t.host, t.port))

    def _handshake(self, sock: socket.socket, host: str) -> ssl.SSLSocket:
        """``sock`` in TLS for ``host``, verified; closed on any failure or interruption
        (wrap_socket's own handshake closes it on OSError and ValueError only, and its socket
        is no longer ``sock``'s to close)."""
        try:
            tls = self.tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        except BaseException:
            sock.close()
            raise
        try:
            tls.do_handshake()
        except BaseException as exc:
            tls.close()
            if isinstance(exc, TimeoutError):
                raise TimedOut("timed out: ConnectTimeout (TLS handshake)") from exc
            if isinstance(exc, (OSError, ValueError)):
                raise ConnectFailed(f"ConnectError: {exc}") from exc
            raise
        return tls

    def close(self) -> None:
        with self._lock:
            stacks, self._idle = list(self._idle.values()), {}
        for stack in stacks:
            for conn in stack:
                conn.close()
