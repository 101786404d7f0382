"""A real threaded HTTP server that plays origin, CORS proxy and video site.

Routes are keyed by path (``/a/b.jpg``); requests for any Host reach the same table, so tests
send ``zkres1.myzaker.com`` and ``cors.zfour.workers.dev`` here with ``--connect-to``; a route
``/path?*`` answers ``/path`` with any query. A request
for ``/?<url>`` (or ``/proxy/?<url>``) is served as the CORS proxy: the inner URL's path is
looked up in the same table unless the proxy is marked dead. Every request is counted per path
and per Host, and the maximum number of concurrent requests per Host is tracked.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Response:
    """What a route answers. ``sequence`` responses are used one per request, then the last."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/octet-stream"
    delay: float = 0.0  # seconds before the status line
    # Set: the request hangs before its status line until the event is set (by the test, or by
    # the server's reset or stop), a hang that no timing of a loaded machine ends early.
    hold: threading.Event | None = None
    drip: float = 0.0  # seconds between chunks of the body
    chunk: int = 65536
    truncate_to: int | None = None  # send only this many body bytes, then close
    reject_referer: bool = False  # 403 when the request carries a Referer
    redirect: str | None = None  # Location for a 30x
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None


class OriginServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.scheme = "https" if ssl_context is not None else "http"
        self.routes: dict[str, Response | list[Response]] = {}
        self.hits: Counter[str] = Counter()
        self.hosts: Counter[str] = Counter()
        self.proxy_hits: Counter[str] = Counter()
        self.proxy_dead = False
        self.inflight: dict[str, int] = defaultdict(int)
        self.max_inflight: dict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.request_times: list[float] = []  # time.time() of each entry of ``requests``
        self.active: dict[int, str] = {}  # client port -> raw path, while being answered
        self.default_latency = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> OriginServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def add(self, path: str, response: Response | list[Response]) -> None:
        self.routes[path] = response

    def release(self) -> None:
        """Every request held by a route's ``hold`` goes on."""
        for entry in list(self.routes.values()):
            for response in entry if isinstance(entry, list) else [entry]:
                if response.hold is not None:
                    response.hold.set()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.routes.clear()
            self.hits.clear()
            self.hosts.clear()
            self.proxy_hits.clear()
            self.inflight.clear()
            self.max_inflight.clear()
            self.requests.clear()
            self.request_times.clear()
            self.active.clear()
            self.proxy_dead = False
            self.default_latency = 0.0

    def _pick(self, path: str) -> Response | None:
        entry = self.routes.get(path)
        if isinstance(entry, list):
            n = self.hits[path]
            return entry[min(n - 1, len(entry) - 1)] if entry else None
        return entry


def _make_handler(server: OriginServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        _counted: str | None = None  # the host of the request counted in flight

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            host = (self.headers.get("Host") or "").split(":")[0]
            raw = self.path
            proxied = raw.startswith("/?") or raw.startswith("/proxy/?")
            # In flight until the client can have the whole response (``_done``): a client that
            # read it all may release its slot before this thread returns from its last write.
            self._counted = host
            with server._lock:
                server.inflight[host] += 1
                server.max_inflight[host] = max(server.max_inflight[host], server.inflight[host])
                server.hosts[host] += 1
                server.requests.append((host, raw, dict(self.headers.items())))
                server.request_times.append(time.time())
                server.active[self.client_address[1]] = raw
            try:
                if proxied:
                    inner = raw.split("?", 1)[1]
                    if "%" in inner and "://" not in inner[:12]:
                        inner = unquote(inner)
                    with server._lock:
                        server.proxy_hits[inner] += 1
                    if server.proxy_dead:
                        self._send(Response(status=502, body=b"worker dead",
                                            content_type="text/plain"), head)
                        return
                    parts = urlsplit(inner)
                    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
                    # A route registered as "proxy:<path>" answers only through the proxy.
                    key = "proxy:" + path if ("proxy:" + path) in server.routes else path
                else:
                    key = raw
                if key not in server.routes and "?" in key:
                    # A route registered as "<path>?*" answers that path with any query.
                    wild = key.split("?", 1)[0] + "?*"
                    key = wild if wild in server.routes else key
                with server._lock:
                    server.hits[key] += 1
                response = server._pick(key)
                if response is None:
                    self._send(Response(status=404, body=b"not found", content_type="text/plain"),
                               head)
                    return
                self._send(response, head)
            finally:
                self._done()
                with server._lock:
                    server.active.pop(self.client_address[1], None)

        def _done(self) -> None:
            """The request stops counting as in flight (once)."""
            host, self._counted = self._counted, None
            if host is not None:
                with server._lock:
                    server.inflight[host] -= 1

        def _send(self, r: Response, head: bool) -> None:
            if server.default_latency:
                time.sleep(server.default_latency)
            if r.delay:
                time.sleep(r.delay)
            if r.hold is not None:
                r.hold.wait()
            if r.handler is not None:
                r.handler(self)
                return
            if r.reject_referer and self.headers.get("Referer"):
                r = Response(status=403, body=b"hotlink forbidden", content_type="text/plain")
            body = r.body
            self.send_response(r.status)
            if r.redirect:
                self.send_header("Location", r.redirect)
            if r.content_type:
                self.send_header("Content-Type", r.content_type)
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            limit = len(body) if r.truncate_to is None else r.truncate_to
            if head or limit == 0:
                self._done()
            self.end_headers()
            if head:
                return
            sent = 0
            try:
                while sent < limit:
                    piece = body[sent:min(limit, sent + r.chunk)]
                    if sent + len(piece) >= limit:
                        self._done()  # the client may have it all before write returns
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent += len(piece)
                    if r.drip:
                        time.sleep(r.drip)
            except (BrokenPipeError, ConnectionResetError):
                return
            if r.truncate_to is not None:
                self.close_connection = True

    return Handler
