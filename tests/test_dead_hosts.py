"""Dead hosts cost seconds: a name DNS says does not exist fails once per host and is not
retried; a host that keeps timing out or refusing is cut short by a breaker; the headline error
of a failed asset is the most telling one, with every attempt kept."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from archiver.errors import ConnectFailed, HostDown, NameNotFound, TimedOut
from archiver.fetch.guard import Guard, system_resolve
from archiver.fetch.health import HostHealth
from archiver.fetch.http import HttpFetcher
from archiver.models import Asset
from archiver.settings import Settings
from tests.support.origin import OriginServer, Response
from tests.test_fetch_http import Run, make_settings

# RFC 6761: names under .invalid never resolve, on any resolver, online or not.
DEAD = "archiver-test.invalid"


class Silent:
    """A server that accepts connections and never answers (counts what it accepted)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def test_a_name_not_found_is_permanent_asked_once_per_host_and_never_retried() -> None:
    asked: Counter[str] = Counter()

    def resolver(host: str, port: int) -> list[str]:
        asked[host] += 1
        return list(system_resolve(host, port))

    slept: list[float] = []
    settings = Settings.model_validate({"fetch": {"retries": 3}, "wayback": {"enabled": False}})
    fetcher = HttpFetcher(settings, guard=Guard(resolver=resolver), sleep=slept.append)
    hosts = [f"h{n}.{DEAD}" for n in range(4)]
    try:
        for n in range(40):
            attempts: list = []
            with pytest.raises(NameNotFound) as info:
                fetcher.fetch(Asset(f"http://{hosts[n % 4]}/{n}.jpg", "image"), attempts)
            assert info.value.code == "dns" and not info.value.retryable
            assert [a.error["code"] for a in attempts if a.error] == ["dns"]
    finally:
        fetcher.close()
    assert asked == {host: 1 for host in hosts}  # the others fail from the breaker's memory
    assert slept == []  # no backoff


def test_a_host_that_never_answers_is_cut_short(silent: Silent) -> None:
    shift = [0.0]
    settings = Settings.model_validate({"fetch": {
        "allow_private": ["127.0.0.0/8"], "connect_to": [f"dead.test:80:127.0.0.1:{silent.port}"],
        "read_timeout": 0.3, "retries": 3, "host_down_after": 3, "host_down_cooldown": 60}})
    fetcher = HttpFetcher(settings, sleep=lambda s: None,
                          clock=lambda: time.monotonic() + shift[0])
    codes = []
    try:
        for n in range(8):
            attempts: list = []
            with pytest.raises((TimedOut, HostDown)) as info:
                fetcher.fetch(Asset(f"http://dead.test/{n}.jpg", "image"), attempts)
            codes.append(info.value.code)
            assert len(attempts) == 1  # a stall is not retried on the same route
        assert codes == ["timeout"] * 3 + ["host-down"] * 5
        assert silent.accepted == 3
        shift[0] += 61  # after the cool-down the host is tried again, and one more stall
        for expected in ("timeout", "host-down"):  # reopens the breaker at once
            with pytest.raises((TimedOut, HostDown)) as info:
                fetcher.fetch(Asset("http://dead.test/again.jpg", "image"), [])
            assert info.value.code == expected
        assert silent.accepted == 4
    finally:
        fetcher.close()


def test_any_answer_closes_the_breaker() -> None:
    health = HostHealth(threshold=2, cooldown=60)
    health.failed("h", ConnectFailed("refused"))
    health.answered("h")
    health.failed("h", ConnectFailed("refused"))
    health.check("h")  # one failure since the answer: still closed
    health.failed("h", TimedOut("stalled"))
    with pytest.raises(HostDown, match="2 connections failed"):
        health.check("h")


@pytest.mark.parametrize(("response", "headline"), [
    (None, "http-404"),  # the origin's own 404, behind a proxy whose name does not exist
    (Response(b"x", delay=2.0), "timeout"),  # a stalled origin is a timeout, not connect/dns
])
def test_the_origins_own_failure_is_the_headline_behind_a_dead_proxy(
        origin: OriginServer, response: Response | None, headline: str) -> None:
    if response is not None:
        origin.add("/a.jpg", response)
    run = Run(make_settings(origin, read_timeout=0.3))
    try:
        asset = Asset("http://zkres1.myzaker.com/a.jpg", "image",
                      proxies=(f"http://cors.{DEAD}/?",))
        error, attempts = run.fail(asset)
    finally:
        run.fetcher.close()
    assert error.code == headline
    assert [(a.route, a.error["code"]) for a in attempts if a.error] == [
        ("direct", headline), ("proxy", "dns")]
