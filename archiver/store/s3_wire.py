"""The fast path's PUT on the wire (s3_fast.py): the request written and the answer read on a
socket of a small pool of its own, without urllib3 or botocore's request and response objects.

botocore's ``URLLib3Session.send`` cost about 0.9 ms of CPU per PUT beyond the socket's own
work (the headers copied into three case-insensitive dictionaries, urllib3's pool, connection
and response objects, the answer's head parsed by the email package) and, with 16 threads,
twice the futex calls (GIL hand-offs) per PUT: 300 PUTs of 60 KB to moto from 16 threads,
1.55 -> 0.64 ms of client CPU each; bench.compare's S3 job, 3.28 -> 2.41 ms per asset
(medians of 5 alternating rounds, load 3.0-4.6). Here the signed fields go out as one buffer
with the body when it is small, and the answer is read by fetch/wire.py (strict framing,
bounded head, checked against h11 by its tests).

The client's own session decides what is kept: its connect and read timeouts, socket options
(TCP_NODELAY, keep-alive), TLS verified as it verifies (its CA bundle or certifi's, its client
certificate, the URL's host name checked). A connection is kept for the next PUT only after a
complete HTTP/1.1 answer that allows it, is checked for a close before it is reused, and one
that turns out closed before any byte of the answer came is replaced once. A URL that the
session would send through a proxy is not sent here (``Sender.for_client`` gives None).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
import weakref
from typing import IO, Any, NamedTuple
from urllib.parse import urlsplit

from botocore.httpsession import get_cert_path

from archiver.fetch import wire

SMALL = 256 * 1024  # a body up to this size goes out in one write with the head
CHUNK = 1024 * 1024  # larger ones in pieces of this size
MAX_ANSWER = 64 * 1024  # body bytes of an answer read at most (S3's are short XML)
IDLE_EXPIRY = 20.0  # seconds an idle connection is kept (S3 closes them after about 20)
CHECK_AFTER = 1.0  # an idle connection older than this is polled for a close before reuse
DEFAULT_PORTS = {"http": 80, "https": 443}
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_FIELD_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")


class Answer(NamedTuple):
    status: int
    code: str  # the <Code> of an XML error body, "" when there is none


class Sender:
    """PUTs to one endpoint (scheme, host, port) on pooled connections. Thread-safe."""

    def __init__(self, scheme: str, host: str, port: int, *, tls: ssl.SSLContext | None,
                 connect_timeout: float, read_timeout: float,
                 options: list[tuple[int, int, int]], max_idle: int) -> None:
        self.host = host
        self.port = port
        self.tls = tls if scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.options = options
        self.max_idle = max(1, max_idle)
        self.authority = host_header(scheme, host, port)
        self.opened = 0  # connections made (tests read it)
        self._idle: list[tuple[socket.socket, float]] = []
        self._lock = threading.Lock()
        # A Sender dropped without close() closes its idle sockets when collected (as
        # urllib3's pools do), not the interpreter with a ResourceWarning.
        weakref.finalize(self, _close_all, self._idle)

    @classmethod
    def for_client(cls, client: Any, url: str) -> Sender | None:
        """A Sender for ``url``'s endpoint with the settings of botocore ``client``'s HTTP
        session; None when ``url`` goes through a proxy or the session is not one this reads."""
        session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        proxies = getattr(session, "_proxy_config", None)
        parts = urlsplit(url)
        if session is None or proxies is None or parts.scheme not in DEFAULT_PORTS \
                or not parts.hostname or proxies.proxy_url_for(url):
            return None
        config = client.meta.config
        tls = _tls_context(session) if parts.scheme == "https" else None
        options = getattr(session, "_socket_options", None) or [
            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        return cls(parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme],
                   tls=tls,                   connect_timeout=float(config.connect_timeout),
                   read_timeout=float(config.read_timeout), options=list(options),
                   max_idle=int(config.max_pool_connections or 10))

    def put(self, target: str, fields: dict[str, str], body: IO[bytes], size: int) -> Answer:
        """``PUT target`` with ``fields`` (Host added) and ``size`` bytes of ``body`` from where
        it is. Raises OSError, ValueError (a field that could split the request) or
        wire.ProtocolError when no answer came."""
        head = _head(target, self.authority, fields)
        start = body.tell()
        sock, reused = self._take()
        try:
            answer, keep = self._exchange(sock, head, body, size)
        except (OSError, wire.ProtocolError) as exc:
            sock.close()
            # A kept connection that the server had closed: nothing of an answer came.
            stale = isinstance(exc, ConnectionError) or (
                isinstance(exc, wire.ProtocolError) and not exc.received)
            if not reused or not stale:
                raise
            body.seek(start)
            sock = self._connect()
            try:
                answer, keep = self._exchange(sock, head, body, size)
            except BaseException:
                sock.close()
                raise
        except BaseException:
            sock.close()
            raise
        if keep:
            self._give_back(sock)
        else:
            sock.close()
        return answer

    def _exchange(self, sock: socket.socket, head: bytes, body: IO[bytes], size: int
                  ) -> tuple[Answer, bool]:
        if size <= SMALL:
            data = body.read(size)
            if len(data) != size:
                raise ValueError(f"body ended after {len(data)} of {size} bytes")
            sock.sendall(head + data)
        else:
            sock.sendall(head)
            left = size
            while left:
                piece = body.read(min(CHUNK, left))
                if not piece:
                    raise ValueError(f"body ended {left} bytes early")
                sock.sendall(piece)
                left -= len(piece)
        clock = time.monotonic
        recv = wire.acking_recv(sock)  # see there: a Nagled server's small answers
        answer, rest = wire.read_head(b"", recv, clock() + self.read_timeout, clock)
        reader = wire.Body(answer, rest, recv)
        data = b""
        for piece in reader.chunks():
            data += piece
            if len(data) > MAX_ANSWER:
                return Answer(answer.status, error_code(data)), False
        return Answer(answer.status, error_code(data) if answer.status >= 300 else ""), \
            answer.keep_alive and not reader.rest

    def _take(self) -> tuple[socket.socket, bool]:
        """The most recently used idle connection still open, else a new one."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                sock, since = self._idle.pop()
            if now - since <= IDLE_EXPIRY and (
                    now - since <= CHECK_AFTER or not wire.idle_unusable(sock)):
                return sock, True
            sock.close()
        return self._connect(), False

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append((sock, time.monotonic()))
                return
        sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            for level, option, value in self.options:
                sock.setsockopt(level, option, value)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                sock.settimeout(self.read_timeout)
            else:
                sock.settimeout(None)  # blocking, with the kernel's timeouts
                wire.kernel_timeouts(sock, self.read_timeout)
        except BaseException:
            sock.close()
            raise
        self.opened += 1
        return sock

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)


def _close_all(idle: list[tuple[socket.socket, float]]) -> None:
    for sock, _ in idle:
        sock.close()
    idle.clear()


def _head(target: str, authority: str, fields: dict[str, str]) -> bytes:
    if not _TARGET.fullmatch(target):
        raise ValueError(f"bad request target {target[:100]!r}")
    lines = [f"PUT {target} HTTP/1.1", f"Host: {authority}"]
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise ValueError(f"bad request field {name[:40]!r}")
        lines.append(f"{name}: {value}")
    lines += ("", "")
    return "\r\n".join(lines).encode("ascii")


def host_header(scheme: str, host: str, port: int | None) -> str:
    """The Host header botocore sends (``_host_from_url``): the name as given (urlsplit's
    ``hostname`` is lowercase), an IPv6 address in brackets, the port unless it is the
    scheme's default."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None or port == DEFAULT_PORTS.get(scheme) else f"{shown}:{port}"


def error_code(data: bytes) -> str:
    """The ``<Code>`` of an S3 XML error body, "" when there is none."""
    match = _CODE.search(data)
    return match.group(1).decode("ascii", "replace") if match else ""


def _tls_context(session: Any) -> ssl.SSLContext:
    """TLS as botocore's session verifies: ``verify`` False (no check), True (certifi's
    bundle) or a CA bundle path; its client certificate if it has one."""
    verify = getattr(session, "_verify", True)
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        path = str(get_cert_path(verify))
        folder = os.path.isdir(path)
        context = ssl.create_default_context(cafile=None if folder else path,
                                             capath=path if folder else None)
    cert = getattr(session, "_cert_file", None)
    if cert:
        context.load_cert_chain(cert, getattr(session, "_key_file", None))
    return context
