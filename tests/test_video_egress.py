"""The filtering proxy yt-dlp goes through: checks, connect-to, tunnels, chaining, budget."""

from __future__ import annotations

import socket

import httpx

from archiver.errors import NameNotFound
from archiver.fetch.egress import EgressProxy
from archiver.fetch.guard import Guard
from tests.support.origin import OriginServer, Response


def guard(origin: OriginServer, private: bool = True) -> Guard:
    return Guard(allow_private=["127.0.0.0/8"] if private else [],
                 connect_to=[f"media.test:80:127.0.0.1:{origin.port}"])


def test_absolute_uri_request_is_checked_and_forwarded(origin: OriginServer) -> None:
    origin.add("/a.bin", Response(b"x" * 1000))
    with EgressProxy(guard(origin)) as proxy, httpx.Client(proxy=proxy.url) as client:
        first = client.get("http://media.test/a.bin")
        second = client.get("http://media.test/a.bin?again")
    assert first.status_code == 200 and first.content == b"x" * 1000
    assert first.headers["connection"] == "close"
    assert second.status_code == 404
    assert origin.hosts["media.test"] == 2
    assert proxy.targets == ["media.test:80", "media.test:80"] and proxy.blocked == []
    sent = origin.requests[0][2]
    assert not any(name.lower().startswith("proxy-") for name in sent)


def test_refused_host_gets_403_and_no_connection(origin: OriginServer) -> None:
    with EgressProxy(guard(origin, private=False)) as proxy, \
            httpx.Client(proxy=proxy.url) as client:
        answer = client.get("http://media.test/a.bin")
    assert answer.status_code == 403 and answer.headers["x-archiver-error"] == "blocked"
    assert [b.code for b in proxy.blocked] == ["blocked"]
    assert origin.requests == []


def test_a_name_that_does_not_exist_gets_a_502_that_says_dns(origin: OriginServer) -> None:
    """The guard's NameNotFound used to escape the handler (a traceback, and yt-dlp saw the
    connection dropped instead of an answer)."""
    def missing(host: str, port: int) -> list[str]:
        raise NameNotFound(f"cannot resolve {host}: Name or service not known", host=host)

    with EgressProxy(Guard(["127.0.0.0/8"], resolver=missing)) as proxy, \
            httpx.Client(proxy=proxy.url) as client:
        answer = client.get("http://gone.example/v.mp4")
        port = int(proxy.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"CONNECT gone.example:443 HTTP/1.1\r\n\r\n")
            tunnel = sock.recv(1024)
    assert answer.status_code == 502 and answer.headers["x-archiver-error"] == "dns"
    assert tunnel.startswith(b"HTTP/1.1 502") and b"X-Archiver-Error: dns" in tunnel
    assert [f.code for f in proxy.failures] == ["dns", "dns"]


def test_connect_tunnel_reaches_the_checked_address(origin: OriginServer) -> None:
    origin.add("/t.bin", Response(b"tunnelled"))
    with EgressProxy(guard(origin)) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"CONNECT media.test:80 HTTP/1.1\r\nHost: media.test:80\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /t.bin HTTP/1.1\r\nHost: media.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"tunnelled")


def test_blocked_connect_tunnel(origin: OriginServer) -> None:
    with EgressProxy(guard(origin, private=False)) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"CONNECT media.test:80 HTTP/1.1\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 403")
    assert proxy.blocked and origin.requests == []


def test_chains_to_the_configured_egress_proxy(origin: OriginServer) -> None:
    origin.add("/c.bin", Response(b"chained"))
    # The upstream is another instance: a real HTTP proxy that knows the connect-to rule.
    with EgressProxy(guard(origin)) as upstream, \
            EgressProxy(guard(origin), upstream=lambda host: upstream.url) as proxy, \
            httpx.Client(proxy=proxy.url) as client:
        answer = client.get("http://media.test/c.bin")
    assert answer.content == b"chained"
    assert upstream.targets == ["media.test:80"] and proxy.targets == ["media.test:80"]


def test_budget_cuts_the_relay(origin: OriginServer) -> None:
    origin.add("/big.bin", Response(b"y" * 2_000_000))
    received = 0
    with EgressProxy(guard(origin), budget=100_000) as proxy, \
            httpx.Client(proxy=proxy.url) as client:
        try:
            with client.stream("GET", "http://media.test/big.bin") as answer:
                for chunk in answer.iter_raw():
                    received += len(chunk)
        except httpx.HTTPError:
            pass  # the body ends early: that is the point
    # The relay stops at the chunk that passes the budget and does not forward it.
    assert proxy.over_budget and 100_000 < proxy.relayed <= 100_000 + 65_536
    assert received <= 100_000


def test_unreachable_target_is_a_502(origin: OriginServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    g = Guard(allow_private=["127.0.0.0/8"], connect_to=[f"gone.test:80:127.0.0.1:{dead}"])
    with EgressProxy(g, connect_timeout=2) as proxy, httpx.Client(proxy=proxy.url) as client:
        answer = client.get("http://gone.test/x")
    assert answer.status_code == 502 and [f.code for f in proxy.failures] == ["connect"]
