"""The SSRF guard, end to end through the HTTP fetcher: every form of a private address is
refused before any connection is made, proven by listeners that count what they accept."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

from archiver.errors import Blocked, FetchError
from archiver.fetch.guard import Guard, is_public_address
from archiver.fetch.http import HttpFetcher
from archiver.models import Asset, Attempt
from archiver.settings import Settings
from tests.support.origin import OriginServer, Response


class Listener:
    """A TCP listener that accepts and counts connections (and answers nothing)."""

    def __init__(self, host: str, family: socket.AddressFamily = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener("127.0.0.1")
    yield lst
    lst.close()


@pytest.fixture
def listener6() -> Iterator[Listener]:
    lst = Listener("::1", socket.AF_INET6)
    yield lst
    lst.close()


def _fetch(
    settings: Settings, url: str, guard: Guard | None = None
) -> tuple[FetchError, list[Attempt]]:
    fetcher = HttpFetcher(settings, guard=guard, sleep=lambda s: None)
    attempts: list[Attempt] = []
    try:
        with pytest.raises(FetchError) as info:
            fetcher.fetch(Asset(origin=url, kind="image"), attempts)
    finally:
        fetcher.close()
    return info.value, attempts


LOOPBACK_FORMS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "localhost",
]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_forms_blocked_without_connecting(host: str, listener: Listener) -> None:
    error, attempts = _fetch(Settings(), f"http://{host}:{listener.port}/a.jpg")
    assert error.code == "blocked"
    assert [a.error and a.error["code"] for a in attempts] == ["blocked"]
    assert listener.accepted == 0


def test_ipv6_loopback_blocked_without_connecting(listener6: Listener) -> None:
    error, _ = _fetch(Settings(), f"http://[::1]:{listener6.port}/a.jpg")
    assert isinstance(error, Blocked)
    assert listener6.accepted == 0


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "100.100.100.200",
        "172.16.5.4",
        "[fd00::1]",
        "[fe80::1]",
        "224.0.0.1",
        "[64:ff9b::a9fe:a9fe]",
    ],
)
def test_private_and_metadata_addresses_blocked(host: str) -> None:
    # A refused address fails as "blocked" at once: had a connection been tried, these
    # unroutable addresses would have ended in a connect error or a timeout instead.
    settings = Settings.model_validate({"fetch": {"connect_timeout": 0.5, "retries": 0}})
    error, attempts = _fetch(settings, f"http://{host}/latest/meta-data/")
    assert error.code == "blocked"
    assert len(attempts) == 1


def test_name_resolving_to_private_address(listener: Listener) -> None:
    def resolver(host: str, port: int) -> Sequence[str]:
        return {"innocent.example": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "127.0.0.1"]}[
            host
        ]

    guard = Guard(resolver=resolver)
    for name in ("innocent.example", "mixed.example"):
        error, _ = _fetch(Settings(), f"http://{name}:{listener.port}/a.jpg", guard=guard)
        assert error.code == "blocked"
    assert listener.accepted == 0


def test_connect_to_target_is_still_checked(listener: Listener) -> None:
    settings = Settings.model_validate(
        {"fetch": {"connect_to": [f"zkres1.myzaker.com:80:127.0.0.1:{listener.port}"]}}
    )
    error, _ = _fetch(settings, "http://zkres1.myzaker.com/a.jpg")
    assert error.code == "blocked"
    assert listener.accepted == 0


def test_redirect_from_allowed_server_to_private_address(origin: OriginServer) -> None:
    trap = Listener("127.0.0.2")
    try:
        origin.add("/hop.jpg", Response(status=302, redirect=f"http://127.0.0.2:{trap.port}/x.jpg"))
        settings = Settings.model_validate(
            {
                "fetch": {
                    "allow_private": ["127.0.0.1/32"],
                    "connect_to": [f"img.example.com:80:127.0.0.1:{origin.port}"],
                }
            }
        )
        error, attempts = _fetch(settings, "http://img.example.com/hop.jpg")
        assert error.code == "blocked"
        assert origin.hits["/hop.jpg"] == 1  # the allowed server was reached...
        assert trap.accepted == 0  # ...the private hop was not
        assert attempts[0].error is not None and "127.0.0.2" in attempts[0].error["message"]
    finally:
        trap.close()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://ftp.example.com/a.jpg", "gopher://127.0.0.1:70/_x"]
)
def test_non_http_schemes_blocked(url: str) -> None:
    fetcher = HttpFetcher(Settings())
    try:
        assert not fetcher.matches(Asset(origin=url, kind="image"))
    finally:
        fetcher.close()
    error, _ = _fetch(Settings(), url)
    assert error.code == "blocked"


def test_allowlist_opens_a_cidr(origin: OriginServer) -> None:
    from tests.support import media

    origin.add("/ok.png", Response(body=media.png(), content_type="image/png"))
    settings = Settings.model_validate({"fetch": {"allow_private": ["127.0.0.0/8"]}})
    fetcher = HttpFetcher(settings)
    try:
        fetched = fetcher.fetch(Asset(origin=f"{origin.base}/ok.png", kind="image"), [])
        assert fetched.blob.media_type == "image/png"
        fetched.close()
    finally:
        fetcher.close()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("::ffff:93.184.216.34", True),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.1.2.3", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("64:ff9b:1::a00:1", False),  # local-use NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("::", False),
        ("::1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("100.64.0.1", False),
        ("198.18.0.1", False),
        ("192.0.0.170", False),
        ("fd12:3456::1", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("192.0.2.1", False),
        # IANA's special-purpose registries, IPv4
        ("0.1.2.3", False),  # "this network"
        ("100.127.255.254", False),  # shared (CGNAT), top of 100.64.0.0/10
        ("100.100.100.200", False),  # Alibaba's metadata service
        ("192.0.0.9", False),  # IETF protocol assignments, all of 192.0.0.0/24
        ("192.88.99.1", False),  # 6to4 relay anycast, deprecated; global to Python 3.11
        ("198.19.255.1", False),  # benchmarking, top of 198.18.0.0/15
        ("198.51.100.7", False),
        ("203.0.113.7", False),
        ("239.255.255.250", False),  # multicast
        ("255.255.255.254", False),  # reserved 240.0.0.0/4
        ("8.8.8.8", True),
        ("100.63.255.255", True),  # just below CGNAT
        ("100.128.0.1", True),  # just above
        ("198.20.0.1", True),  # just above benchmarking
        # IPv6
        ("fec0::1", False),  # site-local, deprecated; global to Python 3.11
        ("feff::1", False),
        ("64:ff9b:1::5db8:d822", False),  # local-use NAT64 (RFC 8215), even of a public v4
        ("64:ff9b:1:ffff::1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::c0a8:101", False),  # NAT64 of 192.168.1.1
        ("64:ff9b::6440:1", False),  # NAT64 of 100.64.0.1
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2002:c0a8:101::", False),  # 6to4 of 192.168.1.1
        ("2002:5db8:d822::1", True),  # 6to4 of 93.184.216.34
        ("::ffff:169.254.169.254", False),
        ("::ffff:100.64.0.1", False),
        ("::ffff:192.88.99.1", False),
        ("::7f00:1", False),  # IPv4-compatible (deprecated) 127.0.0.1
        ("::5db8:d822", False),  # IPv4-compatible of a public v4: not routable either
        ("100::1", False),  # discard-only
        ("2001::1", False),  # Teredo
        ("2001:2::1", False),  # benchmarking
        ("2001:20::1", False),  # ORCHIDv2
        ("2001:db8::1", False),  # documentation
        ("3fff::1", False),  # documentation (RFC 9637); global to Python 3.11
        ("5f00::1", False),  # segment routing SIDs
        ("fc00::1", False),
        ("febf::1", False),  # link-local, top of fe80::/10
        ("ff0e::1", False),
        ("2001:4860:4860::8888", True),
        ("2400:cb00::1", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(("allowed", "address"), [
    ("fec0::/10", "fec0::1"),
    ("64:ff9b:1::/48", "64:ff9b:1::a00:1"),
    ("192.88.99.0/24", "192.88.99.1"),
    ("100.64.0.0/10", "100.64.0.1"),
])
def test_a_refused_range_is_opened_only_by_allow_private(allowed: str, address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not Guard().allows(ip)
    assert Guard(allow_private=[allowed]).allows(ip)


@pytest.mark.parametrize("host", ["[fec0::1]", "[64:ff9b:1::5db8:d822]", "192.88.99.1",
                                  "[3fff::1]"])
def test_ranges_python_calls_global_are_blocked_when_fetched(host: str) -> None:
    settings = Settings.model_validate({"fetch": {"connect_timeout": 0.5, "retries": 0}})
    error, attempts = _fetch(settings, f"http://{host}/a.jpg")
    assert error.code == "blocked"
    assert len(attempts) == 1
