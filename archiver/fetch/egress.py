"""A small local filtering HTTP proxy that puts yt-dlp's own connections under the SSRF Guard.

yt-dlp opens its sockets itself (page, API, format, fragment and thumbnail requests), so the
httpx ``GuardedBackend`` cannot see them. Instead every yt-dlp request is sent to this proxy on
127.0.0.1: it reads the target of a ``CONNECT host:port`` tunnel or of an absolute-URI request,
applies connect-to rules, resolves and checks the address with the Guard and connects to that
checked address (no second DNS lookup), or chains to the configured egress proxy. A refused
target gets a 403 and is remembered, so the fetcher can report ``blocked`` rather than yt-dlp's
generic HTTP error. It also counts the bytes it relays, a size cap that holds whatever yt-dlp's
own accounting does.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from archiver.errors import Blocked, ConnectFailed, FetchError
from archiver.fetch.guard import Guard

UpstreamFn = Callable[[str], str | None]

_MAX_HEAD = 64 * 1024
_HOP_HEADERS = ("proxy-", "connection:", "keep-alive:")


class EgressProxy:
    """One proxy, normally per fetch, so what it refused and relayed belongs to one task."""

    def __init__(
        self,
        guard: Guard,
        *,
        upstream: UpstreamFn | None = None,
        budget: int | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        self.guard = guard
        self.upstream = upstream or (lambda host: None)
        self.budget = budget
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.blocked: list[Blocked] = []
        self.failures: list[FetchError] = []
        self.relayed = 0
        self.over_budget = False
        self.targets: list[str] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        # A short poll interval: shutdown() waits for it, and there is one proxy per fetch.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="archiver-egress", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> EgressProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting and cut every open relay, so no thread outlives the fetch for long."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in list(self._sockets):
                _close(sock)
            self._sockets.clear()

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler ------------------------------------------------------------------

    def open_target(self, host: str, port: int) -> tuple[socket.socket, str | None]:
        """A socket to ``host:port`` (checked) or to the upstream proxy for it, and that
        upstream's URL. Raises Blocked, or the FetchError of a name that does not resolve
        (NameNotFound), a lookup that timed out (TimedOut) or a connection that failed."""
        with self._lock:
            self.targets.append(f"{host}:{port}")
        try:
            thost, tport = self.guard.target(host, port)
            addresses = self.guard.resolve(thost, tport, self.connect_timeout)
        except Blocked as exc:
            with self._lock:
                self.blocked.append(exc)
            raise
        except FetchError as exc:  # a name that does not exist (dns), a lookup that timed out
            with self._lock:
                self.failures.append(exc)
            raise
        upstream = self.upstream(host)
        if upstream:
            parts = urlsplit(upstream)
            if parts.scheme != "http" or not parts.hostname:
                raise ConnectFailed(f"egress proxy {upstream!r} is not http://host:port")
            return self._connect([parts.hostname], parts.port or 80, upstream), upstream
        return self._connect(addresses, tport, f"{host}:{port}"), None

    def _connect(self, addresses: list[str], port: int, label: str) -> socket.socket:
        error: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, port), timeout=self.connect_timeout)
            except OSError as exc:
                error = exc
                continue
            self.track(sock)
            return sock
        failure = ConnectFailed(f"cannot connect to {label}: {error}")
        with self._lock:
            self.failures.append(failure)
        raise failure

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        _close(sock)

    def count(self, n: int) -> bool:
        """Add relayed bytes; False once the budget is spent (the relay then stops)."""
        with self._lock:
            self.relayed += n
            if self.budget is not None and self.relayed > self.budget:
                self.over_budget = True
                return False
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _make_handler(proxy: EgressProxy) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        connection: socket.socket

        def handle(self) -> None:
            self.connection = self.request
            proxy.track(self.connection)
            try:
                self.connection.settimeout(proxy.idle_timeout)
                read = _read_head(self.connection)
                if read is None:
                    return
                self._serve(*read)
            except OSError:
                return  # the client went away; nothing to answer
            finally:
                proxy.untrack(self.connection)

        def _serve(self, head: bytes, pending: bytes) -> None:
            lines = head.decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            target = rest.rsplit(" ", 1)[0]
            headers = [h for h in lines[1:] if h and not h.lower().startswith(_HOP_HEADERS)]
            if method.upper() == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host, port = host.strip("[]"), int(port_text or 443)
            else:
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    self._refuse(400, "only http:// absolute URIs and CONNECT are proxied")
                    return
                host, port = parts.hostname, parts.port or 80
            try:
                upstream_sock, via = proxy.open_target(host, port)
            except Blocked as exc:
                self._refuse(403, exc.message, code="blocked")
                return
            except FetchError as exc:  # dns, timeout, connect: yt-dlp gets a 502 that says so
                self._refuse(502, exc.message, code=exc.code)
                return
            try:
                if method.upper() == "CONNECT":
                    if via and not _upstream_connect(upstream_sock, target):
                        self._refuse(502, "egress proxy refused the tunnel", code="connect")
                        return
                    self.connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    _relay(proxy, self.connection, upstream_sock, pending)
                    return
                parts = urlsplit(target)
                path = target if via else (parts.path or "/") + (
                    "?" + parts.query if parts.query else "")
                request = "\r\n".join(
                    [f"{method} {path} HTTP/1.1", *headers, "Connection: close", "", ""])
                upstream_sock.sendall(request.encode("latin-1"))
                _relay(proxy, self.connection, upstream_sock, pending,
                       rewrite_head=True)
            finally:
                proxy.untrack(upstream_sock)

        def _refuse(self, status: int, message: str, code: str = "refused") -> None:
            body = message.encode("utf-8", "replace")
            reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
            self.connection.sendall(
                f"HTTP/1.1 {status} {reason}\r\nX-Archiver-Error: {code}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )

    return Handler


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The request head and whatever arrived after it (the first bytes of a body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece or len(data) > _MAX_HEAD:
            return None
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _upstream_connect(sock: socket.socket, target: str) -> bool:
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data and len(data) < _MAX_HEAD:
        piece = sock.recv(4096)
        if not piece:
            return False
        data += piece
    status = data.split(b" ", 2)[1:2]
    return status == [b"200"]


def _relay(
    proxy: EgressProxy,
    client: socket.socket,
    upstream: socket.socket,
    pending: bytes,
    rewrite_head: bool = False,
) -> None:
    """Copy both ways until either side closes, the proxy idles out or the budget is spent.
    With ``rewrite_head`` the response head gets ``Connection: close`` (this proxy serves one
    request per connection, and a client must not reuse it)."""
    if pending:
        upstream.sendall(pending)
    head = b"" if rewrite_head else None
    sockets = [client, upstream]
    while True:
        ready, _, _ = select.select(sockets, [], [], proxy.idle_timeout)
        if not ready:
            return
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                if head:
                    client.sendall(head)
                return
            if sock is client:
                upstream.sendall(data)
                continue
            if not proxy.count(len(data)):
                return
            if head is not None:
                head += data
                if b"\r\n\r\n" not in head:
                    if len(head) > _MAX_HEAD:
                        return
                    continue
                data, head = _close_head(head), None
            try:
                client.sendall(data)
            except OSError:
                return


def _close_head(data: bytes) -> bytes:
    raw, _, body = data.partition(b"\r\n\r\n")
    lines = [ln for ln in raw.split(b"\r\n")
             if not ln.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""]) + body


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
