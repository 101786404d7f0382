"""The lean HTTP path (fetch.lean_http) against real local servers: hostile responses, the
keep-alive pool, the guard on every hop, TLS, the egress proxy fallback, and the URL split
fuzzed against httpx's parser."""

from __future__ import annotations

import hashlib
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import Blocked, FetchError
from archiver.fetch.base import Fetched
from archiver.fetch.guard import Guard
from archiver.fetch.http import HttpFetcher
from archiver.fetch.lean import (
    KEEPALIVE_EXPIRY,
    MAX_IDLE_PER_KEY,
    SWEEP_EVERY,
    Conn,
    Pool,
    split_url,
)
from archiver.fetch.tls import ssl_context
from archiver.fetch.transport import check_scheme
from archiver.fetch.wire import MAX_HEAD_BYTES
from archiver.models import Asset, Attempt
from archiver.settings import Settings
from tests.conftest import TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.scripted import Script, ScriptedServer
from tests.test_fetch_http import forward_proxy  # noqa: F401 - a fixture
from tests.test_guard import Listener

JPEG = media.jpeg(40, 30)
HOST = "img.test"


def lean_settings(port: int, **fetch: Any) -> Settings:
    base: dict[str, Any] = {"lean_http": True, "allow_private": ["127.0.0.0/8"],
                            "connect_to": [f"{HOST}:80:127.0.0.1:{port}"], "retries": 0}
    base.update(fetch)
    return Settings.model_validate({"fetch": base, "wayback": {"enabled": False}})


class Lean:
    """A fetcher on the lean path for one server; ``get`` returns the Fetched or the error."""

    def __init__(self, settings: Settings) -> None:
        self.fetcher = HttpFetcher(settings, sleep=lambda s: None)

    def get(self, path: str, url: str | None = None) -> Fetched | FetchError:
        attempts: list[Attempt] = []
        try:
            fetched = self.fetcher.fetch(Asset(url or f"http://{HOST}{path}", "image"), attempts)
        except FetchError as exc:
            return exc
        fetched.close()
        return fetched

    def close(self) -> None:
        self.fetcher.close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


def serve(servers: list[ScriptedServer], script: Script, **fetch: Any) -> tuple[ScriptedServer,
                                                                                 Lean]:
    server = ScriptedServer(script)
    servers.append(server)
    return server, Lean(lean_settings(server.port, **fetch))


def ok_head(length: int, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: "
            + str(length).encode() + b"\r\n" + extra + b"\r\n")


def chunked(body: bytes, size: int = 1000) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def code(result: Fetched | FetchError) -> str | None:
    return result.code if isinstance(result, FetchError) else None


# --- framing -------------------------------------------------------------------------------


def test_chunked_and_close_delimited_bodies(scripted: list[ScriptedServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        head = server.read_request(conn)
        if b"/chunked" in head:
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(JPEG))
            server.read_request(conn)  # the connection stays open for the next request
        else:
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG)

    server, lean = serve(scripted, script)
    try:
        for path in ("/chunked.jpg", "/close.jpg"):
            fetched = lean.get(path)
            assert isinstance(fetched, Fetched), fetched
            assert fetched.blob.sha256 == hashlib.sha256(JPEG).hexdigest()
    finally:
        lean.close()


@pytest.mark.faults
@pytest.mark.parametrize("reply,expected", [
    (ok_head(len(JPEG)) + JPEG[:500], "truncated"),  # Content-Length not reached
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(JPEG, 100)[:400],
     "truncated"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + JPEG, "truncated"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + JPEG, "connect"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n" + JPEG, "connect"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     + chunked(JPEG), "connect"),
    (b"HTTP/1.1 2OO OK\r\nContent-Length: 1\r\n\r\nx", "connect"),
    (b"ICY 200 OK\r\n\r\n" + JPEG, "connect"),
    (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "connect"),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 1\r\n\r\nx", "connect"),
    (ok_head(10, b"X-Huge: " + b"h" * MAX_HEAD_BYTES + b"\r\n") + b"x" * 10, "connect"),
    (b"", "connect"),  # closed without a response, on a fresh connection: not retried
    # a line of spaces ending in a bad byte: once a minute of regex backtracking (timeout 120)
    (ok_head(1, b"X:" + b" " * (MAX_HEAD_BYTES - 200) + b"\x00\r\n") + b"x", "connect"),
])
def test_hostile_responses(scripted: list[ScriptedServer], reply: bytes, expected: str) -> None:
    def script(conn: socket.socket, n: int) -> None:
        server.read_request(conn)
        conn.sendall(reply)

    server, lean = serve(scripted, script)
    try:
        assert code(lean.get("/a.jpg")) == expected
        assert server.connections == 1 and len(server.requests) == 1
    finally:
        lean.close()


def _drip(conn: socket.socket, data: bytes) -> None:
    """``data`` a byte at a time, 20 ms apart: each within any read timeout."""
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(0.02)


@pytest.mark.faults
def test_a_dripped_head_ends_at_the_deadline(scripted: list[ScriptedServer]) -> None:
    """Each header byte comes within the read timeout; the try's deadline still ends it."""
    def script(conn: socket.socket, n: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        _drip(conn, b"X" * 200)

    server, lean = serve(scripted, script, deadline=0.5, read_timeout=5)
    try:
        assert code(lean.get("/slow.jpg")) == "timeout"
    finally:
        lean.close()


@pytest.mark.faults
@pytest.mark.parametrize("drip", [b"1;" + b"e" * 4000, b"0\r\nX-Trailer: " + b"t" * 90000])
def test_a_dripped_chunk_line_or_trailer_ends_at_the_download_deadline(
        scripted: list[ScriptedServer], drip: bytes) -> None:
    """Each byte of a chunk extension or a trailer comes within the read timeout and none is a
    body byte; the download deadline still ends the body (before: one or 25 hours)."""
    def script(conn: socket.socket, n: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunked(JPEG)[:-5])
        _drip(conn, drip)

    server, lean = serve(scripted, script, download_deadline=0.5, read_timeout=5)
    try:
        assert code(lean.get("/drip.jpg")) == "timeout"
    finally:
        lean.close()


@pytest.mark.faults
def test_a_stalled_body_times_out(scripted: list[ScriptedServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        server.read_request(conn)
        conn.sendall(ok_head(len(JPEG)) + JPEG[:100])
        time.sleep(2)

    server, lean = serve(scripted, script, read_timeout=0.3)
    try:
        assert code(lean.get("/stall.jpg")) == "timeout"
    finally:
        lean.close()


# --- the keep-alive pool -------------------------------------------------------------------


def test_connections_are_reused_and_a_stale_one_is_replaced_once(
        scripted: list[ScriptedServer]) -> None:
    """Connection 0 answers one request and then closes while idle in the pool; the next
    request fails on it before receiving anything and goes once to a fresh connection, which
    serves every request after it."""
    def script(conn: socket.socket, n: int) -> None:
        while server.read_request(conn):
            conn.sendall(ok_head(len(JPEG)) + JPEG)
            if n == 0:
                return

    server, lean = serve(scripted, script)
    try:
        for i in range(4):
            fetched = lean.get(f"/k{i}.jpg")
            assert isinstance(fetched, Fetched), fetched
            time.sleep(0.05)  # connection 0 closes before the next request
        assert server.connections == 2
        assert len(server.requests) == 4
        assert lean.fetcher.pool.opened == 2
    finally:
        lean.close()


def _acked_within(conn: socket.socket, seconds: float) -> bool:
    """Whether everything sent on ``conn`` is acknowledged within ``seconds`` (TCP_INFO's
    tcpi_unacked, after the eight one-byte fields and rto, ato, snd_mss, rcv_mss)."""
    end = time.monotonic() + seconds
    while True:
        info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        if struct.unpack_from("I", info, 24)[0] == 0:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.0005)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux's TCP_QUICKACK only")
@pytest.mark.parametrize("lean_http", [True, False], ids=["lean", "httpx"])
def test_a_kept_connection_acknowledges_at_once_for_a_nagled_server(
        scripted: list[ScriptedServer], lean_http: bool) -> None:
    """A server with Nagle's algorithm on (a plain socket, no TCP_NODELAY) that writes an
    answer's head and body apart holds the small body until the head is acknowledged. On a
    kept-alive connection in request-answer turns, Linux delays that acknowledgement by at
    least 40 ms, so every small answer came 40 ms late. The lean path asks for an immediate
    acknowledgement before every read (TCP_QUICKACK): the server sees each head acknowledged
    well within the 40 ms, where a plain ``recv`` on the same turns leaves it unacknowledged
    past 35 ms from the second turn on. httpx's path (``lean_http`` off, or a redirect) reads
    through ``transport.AckingStream``, which does the same."""
    small = JPEG[:2000]
    acked: list[bool] = []

    def script(conn: socket.socket, n: int) -> None:
        while server.read_request(conn):
            conn.sendall(ok_head(len(small)))
            acked.append(_acked_within(conn, 0.035))
            conn.sendall(small)

    server, lean = serve(scripted, script, lean_http=lean_http)
    try:
        for i in range(4):
            assert isinstance(lean.get(f"/small{i}.jpg"), Fetched)
        assert server.connections == 1 and acked == [True] * 4

        # The same turns on a socket read with plain recv: the delay the fix removes.
        acked.clear()
        client = socket.create_connection(("127.0.0.1", server.port))
        try:
            for i in range(4):
                client.sendall(f"GET /plain{i}.jpg HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                got = b""
                while not got.endswith(small):
                    got += client.recv(65536)
        finally:
            client.close()
        assert acked[1:] == [False] * 3
    finally:
        lean.close()


@pytest.mark.faults
def test_a_reused_connection_that_answered_part_of_a_head_is_not_retried(
        scripted: list[ScriptedServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        server.read_request(conn)
        conn.sendall(ok_head(len(JPEG)) + JPEG)
        if n == 0 and server.read_request(conn):
            conn.sendall(b"HTTP/1.1 20")  # then closes

    server, lean = serve(scripted, script)
    try:
        assert isinstance(lean.get("/one.jpg"), Fetched)
        assert code(lean.get("/two.jpg")) == "connect"
        assert server.connections == 1 and len(server.requests) == 2
    finally:
        lean.close()


@pytest.mark.faults
def test_bytes_past_a_responses_framing_are_never_read_as_the_next_response(
        scripted: list[ScriptedServer]) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nevil"

    def script(conn: socket.socket, n: int) -> None:
        while server.read_request(conn):
            conn.sendall(ok_head(len(JPEG)) + JPEG + (smuggled if n == 0 else b""))

    server, lean = serve(scripted, script)
    try:
        for _ in range(3):
            fetched = lean.get("/a.jpg")
            assert isinstance(fetched, Fetched)
            assert fetched.blob.sha256 == hashlib.sha256(JPEG).hexdigest()
        assert server.connections == 2  # the first connection was not pooled
    finally:
        lean.close()


@pytest.mark.faults
def test_bytes_past_the_end_of_a_body_read_in_pieces_are_seen(
        scripted: list[ScriptedServer]) -> None:
    """The end of a body and a response nobody asked for come in one segment after a pause:
    the read of the body's last bytes sees the rest, and the connection is not pooled."""
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nevil"

    def script(conn: socket.socket, n: int) -> None:
        while server.read_request(conn):
            conn.sendall(ok_head(len(JPEG)) + JPEG[:-10])
            time.sleep(0.1)  # the client waits in the body for its last 10 bytes
            conn.sendall(JPEG[-10:] + (smuggled if n == 0 else b""))

    server, lean = serve(scripted, script)
    try:
        for _ in range(2):
            fetched = lean.get("/a.jpg")
            assert isinstance(fetched, Fetched), fetched
            assert fetched.blob.sha256 == hashlib.sha256(JPEG).hexdigest()
        assert server.connections == 2
    finally:
        lean.close()


def test_a_short_answer_that_came_whole_keeps_its_connection(
        scripted: list[ScriptedServer]) -> None:
    """A 404 page or a redirect nobody reads, all of it in the read that brought its head,
    leaves the connection reusable; the image after them comes on the same connection."""
    def script(conn: socket.socket, n: int) -> None:
        while head := server.read_request(conn):
            if b"/gone.jpg" in head:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
            elif b"/old.jpg" in head:
                conn.sendall(b"HTTP/1.1 301 Moved\r\nLocation: /a.jpg\r\n"
                             b"Content-Length: 5\r\n\r\nmoved")
            else:
                conn.sendall(ok_head(len(JPEG)) + JPEG)

    server, lean = serve(scripted, script)
    try:
        assert code(lean.get("/gone.jpg")) == "http-404"
        fetched = lean.get("/old.jpg")
        assert isinstance(fetched, Fetched) and fetched.url == f"http://{HOST}/a.jpg"
        assert server.connections == 1 and len(server.requests) == 3
    finally:
        lean.close()


def test_the_pool_bounds_its_idle_connections() -> None:
    pool = Pool(Guard(), ssl_context(Settings().fetch))
    pairs = [socket.socketpair() for _ in range(MAX_IDLE_PER_KEY + 4)]
    try:
        conns = [Conn(a, ("http", "a.test", 80)) for a, _ in pairs[:-1]]
        for conn in conns:
            pool.give_back(conn)
        assert sum(c.sock.fileno() == -1 for c in conns) == 3  # past the cap: closed
        # idle past the expiry: never handed out, and swept when anything comes back
        for conn in conns[:MAX_IDLE_PER_KEY]:
            conn.idle_since -= KEEPALIVE_EXPIRY + 1
        newest = conns[MAX_IDLE_PER_KEY - 1]
        assert pool.take(("http", "a.test", 80)) is None
        assert newest.sock.fileno() == -1
        other = Conn(pairs[-1][0], ("http", "b.test", 80))
        pool._swept -= SWEEP_EVERY + 1
        pool.give_back(other)
        assert all(c.sock.fileno() == -1 for c in conns)
        assert pool.take(("http", "b.test", 80)) is other
        other.close()
    finally:
        pool.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_a_body_not_read_to_its_end_closes_its_connection(origin: OriginServer) -> None:
    origin.add("/page.jpg", Response(body=b"<html>" + b"x" * 100_000, content_type="text/html"))
    origin.add("/a.jpg", Response(body=JPEG, content_type="image/jpeg"))
    lean = Lean(lean_settings(origin.port))
    try:
        assert code(lean.get("/page.jpg")) == "not-media"  # stops after the first bytes
        assert isinstance(lean.get("/a.jpg"), Fetched)
        assert isinstance(lean.get("/a.jpg"), Fetched)
        assert lean.fetcher.pool.opened == 2  # the page's connection was not pooled
    finally:
        lean.close()


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("phase", ["tls-handshake", "response-head", "body"])
def test_an_interrupt_inside_a_request_closes_its_connection(
        scripted: list[ScriptedServer], phase: str, raised: type[BaseException]) -> None:
    # The server, once the client has sent (a TLS ClientHello, or a request), interrupts the
    # main thread with a signal whose handler raises, as Ctrl-C or a shutdown would; then it
    # waits for the client to close the connection. A socket left open would only be closed
    # when the traceback holding it goes, so ``info`` is kept until the end.
    closed = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def script(conn: socket.socket, n: int) -> None:
        conn.settimeout(10)
        if not conn.recv(65536):
            return
        if phase == "body":
            conn.sendall(ok_head(len(JPEG)) + JPEG[:100])
        signal.pthread_kill(main, signal.SIGUSR1)
        try:
            while conn.recv(65536):
                pass
        except ConnectionResetError:  # closed with bytes of ours unread: a reset, not a FIN
            pass
        closed.set()  # (not after the 10 s timeout: that raises, and the test fails)

    def interrupt(signum: int, frame: object) -> None:
        raise raised()

    server = ScriptedServer(script)
    scripted.append(server)
    url = "https://img.test/a.jpg" if phase == "tls-handshake" else "http://img.test/a.jpg"
    port = 443 if url.startswith("https") else 80
    lean = Lean(lean_settings(server.port, connect_to=[f"{HOST}:{port}:127.0.0.1:{server.port}"],
                              connect_timeout=10, read_timeout=10))
    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with pytest.raises(raised) as info:
            lean.get("", url)
        assert closed.wait(10), "the connection was left open"
        assert info.value is not None
    finally:
        signal.signal(signal.SIGUSR1, previous)
        lean.close()


# --- the guard, redirects, TLS, proxies ------------------------------------------------------


def test_redirect_to_loopback_or_private_is_blocked(origin: OriginServer) -> None:
    trap = Listener("127.0.0.2")
    try:
        for i, target in enumerate((f"http://127.0.0.2:{trap.port}/x.jpg",
                                    f"http://[::ffff:127.0.0.2]:{trap.port}/x.jpg",
                                    "http://169.254.169.254/latest/meta-data/",
                                    "http://[64:ff9b::7f00:2]/x.jpg")):
            origin.add(f"/hop{i}.jpg", Response(status=302, redirect=target))
            lean = Lean(lean_settings(origin.port, allow_private=["127.0.0.1/32"]))
            try:
                assert code(lean.get(f"/hop{i}.jpg")) == "blocked"
            finally:
                lean.close()
        assert trap.accepted == 0
    finally:
        trap.close()


def test_redirects_are_counted(origin: OriginServer) -> None:
    for i in range(3):
        origin.add(f"/r{i}.jpg", Response(status=301, redirect=f"/r{i + 1}.jpg"))
    origin.add("/r3.jpg", Response(body=JPEG, content_type="image/jpeg"))
    lean = Lean(lean_settings(origin.port, max_redirects=2))
    try:
        assert code(lean.get("/r0.jpg")) == "redirects"
    finally:
        lean.close()
    lean = Lean(lean_settings(origin.port, max_redirects=3))
    try:
        fetched = lean.get("/r0.jpg")
        assert isinstance(fetched, Fetched) and fetched.url == f"http://{HOST}/r3.jpg"
    finally:
        lean.close()


def test_tls_verifies_the_url_host(tls_origin: TLSOrigin) -> None:
    tls_origin.server.add("/t.jpg", Response(body=JPEG, content_type="image/jpeg"))
    port = tls_origin.server.port
    mapped = [f"cdn.myzaker.com:443:127.0.0.1:{port}", f"other.example:443:127.0.0.1:{port}"]
    lean = Lean(lean_settings(port, connect_to=mapped, ca_bundle=tls_origin.ca_bundle))
    try:
        fetched = lean.get("", "https://cdn.myzaker.com/t.jpg")
        assert isinstance(fetched, Fetched) and fetched.exchange is not None
        assert dict(fetched.exchange["request"]["headers"])["Host"] == "cdn.myzaker.com"
        wrong = lean.get("", "https://other.example/t.jpg")  # not a name the cert carries
        assert code(wrong) == "connect" and "CERTIFICATE_VERIFY_FAILED" in str(wrong)
    finally:
        lean.close()
    lean = Lean(lean_settings(port, connect_to=mapped))  # certifi's roots only
    try:
        assert "CERTIFICATE_VERIFY_FAILED" in str(lean.get("", "https://cdn.myzaker.com/t.jpg"))
    finally:
        lean.close()


def test_an_egress_proxy_host_goes_through_httpx(
        origin: OriginServer, forward_proxy: list[str]) -> None:  # noqa: F811
    proxy_url = forward_proxy.pop(0)
    origin.add("/via.jpg", Response(body=JPEG, content_type="image/jpeg"))
    origin.add("/start.jpg", Response(status=302, redirect="http://zkres1.myzaker.com/via.jpg"))
    settings = lean_settings(origin.port, connect_to=[
        f"{HOST}:80:127.0.0.1:{origin.port}", f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}"],
        hosts=[
        {"pattern": "*.myzaker.com", "egress_proxy": proxy_url}])
    lean = Lean(settings)
    try:
        fetched = lean.get("/start.jpg")  # direct, then a hop through the proxy
        assert isinstance(fetched, Fetched), fetched
        assert fetched.blob.sha256 == hashlib.sha256(JPEG).hexdigest()
        assert forward_proxy == ["http://zkres1.myzaker.com/via.jpg"]
        assert lean.fetcher.pool.opened == 1
    finally:
        lean.close()


def test_one_redirect_chain_across_both_transports(
        origin: OriginServer, forward_proxy: list[str]) -> None:  # noqa: F811
    # lean -> through the egress proxy on httpx -> lean again, one chain, one count
    proxy_url = forward_proxy.pop(0)
    origin.add("/start.jpg", Response(status=302, redirect="http://zkres1.myzaker.com/via.jpg"))
    origin.add("/via.jpg", Response(status=301, redirect="http://img2.test/end.jpg"))
    origin.add("/end.jpg", Response(body=JPEG, content_type="image/jpeg"))
    mapped = [f"{h}:80:127.0.0.1:{origin.port}" for h in (HOST, "zkres1.myzaker.com", "img2.test")]
    proxied = [{"pattern": "*.myzaker.com", "egress_proxy": proxy_url}]
    lean = Lean(lean_settings(origin.port, connect_to=mapped, hosts=proxied, max_redirects=2))
    try:
        fetched = lean.get("/start.jpg")
        assert isinstance(fetched, Fetched), fetched
        assert fetched.url == "http://img2.test/end.jpg"
        assert fetched.blob.sha256 == hashlib.sha256(JPEG).hexdigest()
        assert forward_proxy == ["http://zkres1.myzaker.com/via.jpg"]
        assert lean.fetcher.pool.opened == 2  # img.test, then img2.test after the proxy's hop
    finally:
        lean.close()
    lean = Lean(lean_settings(origin.port, connect_to=mapped, hosts=proxied, max_redirects=1))
    try:
        assert code(lean.get("/start.jpg")) == "redirects"
    finally:
        lean.close()


# --- the URL split ---------------------------------------------------------------------------


def _httpx_parts(url: str) -> tuple[str, str, int, bytes] | None:
    try:
        parsed = httpx.URL(url)
        host = parsed.host
    except (httpx.InvalidURL, ValueError, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not host:
        return None
    default = 443 if parsed.scheme == "https" else 80
    return (str(parsed), parsed.raw_host.decode(),
            default if parsed.port is None else parsed.port, parsed.raw_path)


_host = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}(\.[a-z0-9-]{1,8}){0,3}\.?", fullmatch=True),
    st.sampled_from(["127.1", "0x7f000001", "2130706433", "[::1]", "[::ffff:10.0.0.1]",
                     "EXAMPLE.com", "xn--fsq.com", "例え.jp", "a..b", "-a.com", "user@host",
                     "host:0", "host:80", "host:443", "host:65536", "host:99999", ""]),
)
_path = st.text(st.sampled_from(list("abc/.%?#&=;:@!$'()*+,~-_ []<>\"\\^`{|}\t\r\n\x00é")),
                max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["http", "https", "HTTP", "ftp", "http:", ""]), _host, _path)
def test_split_url_agrees_with_httpx(scheme: str, host: str, path: str) -> None:
    url = f"{scheme}://{host}{path}"
    expected = _httpx_parts(url)
    try:
        t = split_url(url)
    except Blocked:
        assert expected is None
        return
    assert expected is not None
    assert (t.url, t.host, t.port, t.target) == expected
    assert b"\r" not in t.target and b"\n" not in t.target and b" " not in t.target


@pytest.mark.parametrize("url", ["http://xn--ls8h.la/a.jpg", "http://xn--/a.jpg",
                                 "https://xn--zz-ab.com/b.gif"])
def test_a_host_that_is_not_valid_idna_is_blocked_on_the_httpx_path_too(url: str) -> None:
    # httpx's parser raises idna's own error (a ValueError) for these, outside its InvalidURL.
    with pytest.raises(Blocked, match="invalid host"):
        check_scheme(url)
