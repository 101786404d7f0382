"""Name lookups are bounded in time (fetch/dns.py, through Guard.resolve): a resolver that
never answers fails an asset as ``timeout`` within its connect timeout or deadline, on the
lean path, httpx's and the video proxy's, still through the guard; the lookup threads are
capped, shared by callers of one name, and numeric addresses never wait for one.

The resolver is the guard's seam (a function of host and port); everything else is real: the
origin, the fetcher, the threads."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from archiver.errors import FetchError, NameNotFound, TimedOut
from archiver.fetch.dns import LOOKUPS, Lookups
from archiver.fetch.egress import EgressProxy
from archiver.fetch.guard import Guard, system_resolve
from archiver.fetch.http import HttpFetcher
from archiver.models import Asset, Attempt
from archiver.settings import Settings
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.test_fetch_http import forward_proxy  # noqa: F401 - a fixture

JPEG = media.jpeg(40, 30)


class Resolver:
    """Answers ``127.0.0.1`` (or ``answers[host]``) for every name, but a name in ``hang``
    only once ``release`` is set (or after ``hold`` seconds: a fetch that waited for it gets
    the answer, and its test fails on what it got). Records each call and its thread."""

    def __init__(self, hang: Sequence[str] = (), hold: float = 5.0,
                 answers: dict[str, list[str]] | None = None) -> None:
        self.hang = set(hang)
        self.hold = hold
        self.answers = answers or {}
        self.release = threading.Event()
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> Sequence[str]:
        with self._lock:
            self.calls.append((host, threading.current_thread().name))
        if host in self.hang:
            self.release.wait(self.hold)
        return self.answers.get(host, ["127.0.0.1"])


@pytest.fixture
def resolvers() -> Iterator[list[Resolver]]:
    made: list[Resolver] = []
    yield made
    for resolver in made:  # the lookup threads they hold come back
        resolver.release.set()


def settings_for(lean: bool, **fetch: Any) -> Settings:
    base: dict[str, Any] = {"lean_http": lean, "allow_private": ["127.0.0.1/32"],
                            "retries": 0}
    base.update(fetch)
    return Settings.model_validate({"fetch": base, "wayback": {"enabled": False}})


def fetch(settings: Settings, guard: Guard, url: str) -> tuple[Any, list[Attempt]]:
    fetcher = HttpFetcher(settings, guard=guard, sleep=lambda s: None)
    attempts: list[Attempt] = []
    try:
        try:
            result: Any = fetcher.fetch(Asset(url, "image"), attempts)
        except FetchError as exc:
            return exc, attempts
        result.close()
        return result, attempts
    finally:
        fetcher.close()


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
@pytest.mark.parametrize("bound", [{"connect_timeout": 0.2}, {"deadline": 0.3}],
                         ids=["connect-timeout", "deadline"])
def test_a_lookup_that_never_answers_fails_the_asset_as_timeout(
        origin: OriginServer, resolvers: list[Resolver], lean: bool,
        bound: dict[str, float]) -> None:
    origin.add("/a.jpg", Response(body=JPEG, content_type="image/jpeg"))
    resolver = Resolver(hang=["slow.test"])
    resolvers.append(resolver)
    error, attempts = fetch(settings_for(lean, **bound), Guard(["127.0.0.1/32"],
                            resolver=resolver), f"http://slow.test:{origin.port}/a.jpg")
    assert isinstance(error, TimedOut), error  # not the image the answer would have brought
    assert "DNS lookup of slow.test" in error.message
    assert [a.error and a.error["code"] for a in attempts] == ["timeout"]
    assert resolver.calls == [("slow.test", "archiver-dns")]
    assert origin.hits["/a.jpg"] == 0


def test_a_host_behind_an_egress_proxy_is_looked_up_within_the_connect_timeout(
        origin: OriginServer, forward_proxy: list[str],  # noqa: F811
        resolvers: list[Resolver]) -> None:
    # httpx's transport checks the host before handing the request to the proxy
    proxy_url = forward_proxy.pop(0)
    origin.add("/a.jpg", Response(body=JPEG, content_type="image/jpeg"))
    resolver = Resolver(hang=["zkres1.myzaker.com"])
    resolvers.append(resolver)
    settings = settings_for(True, connect_timeout=0.2, hosts=[
        {"pattern": "*.myzaker.com", "egress_proxy": proxy_url}])
    error, _ = fetch(settings, Guard(["127.0.0.1/32"], resolver=resolver),
                     "http://zkres1.myzaker.com/a.jpg")
    assert isinstance(error, TimedOut), error
    assert "DNS lookup of zkres1.myzaker.com" in error.message
    assert forward_proxy == []  # never asked


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_an_answer_from_a_lookup_thread_is_checked_and_is_what_is_connected_to(
        origin: OriginServer, lean: bool) -> None:
    origin.add("/a.jpg", Response(body=JPEG, content_type="image/jpeg"))
    resolver = Resolver(answers={"evil.test": ["127.0.0.1", "10.0.0.1"]})
    guard = Guard(["127.0.0.1/32"], resolver=resolver)
    fetched, _ = fetch(settings_for(lean), guard, f"http://good.test:{origin.port}/a.jpg")
    assert fetched.blob.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert origin.hosts["good.test"] == 1
    error, _ = fetch(settings_for(lean), guard, f"http://evil.test:{origin.port}/a.jpg")
    assert error.code == "blocked" and "10.0.0.1" in error.message
    assert origin.hits["/a.jpg"] == 1
    # one lookup per connection, on a lookup thread; nothing asked again at connect time
    assert resolver.calls == [("good.test", "archiver-dns"), ("evil.test", "archiver-dns")]


def test_a_numeric_address_is_answered_in_the_calling_thread() -> None:
    resolver = Resolver()
    guard = Guard(["127.0.0.0/8", "::1/128"], resolver=resolver)
    for host in ("127.0.0.1", "::1"):
        assert guard.resolve(host, 80, 1.0) == ["127.0.0.1"]
    assert guard.resolve("localhost", 80, 1.0) == ["127.0.0.1"]
    here = threading.current_thread().name
    assert resolver.calls == [("127.0.0.1", here), ("::1", here), ("localhost", "archiver-dns")]


def test_lookup_threads_are_capped_and_shared_by_callers_of_one_name(
        resolvers: list[Resolver]) -> None:
    resolver = Resolver(hang=["a.test", "b.test", "c.test"], hold=30)
    resolvers.append(resolver)
    lookups = Lookups(max_threads=2)
    errors: list[BaseException] = []

    def ask(host: str) -> None:
        try:
            lookups.resolve(resolver, host, 80, 0.3)
        except TimedOut as exc:
            errors.append(exc)

    # five callers of one name that hangs: one lookup, one thread
    callers = [threading.Thread(target=ask, args=("a.test",)) for _ in range(5)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(errors) == 5 and lookups.threads == 1
    assert [host for host, _ in resolver.calls] == ["a.test"]
    # two more names: the second thread takes b.test, c.test waits for a thread and is
    # dropped unrun when its caller gives up
    callers = [threading.Thread(target=ask, args=(h,)) for h in ("b.test", "c.test")]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(errors) == 7 and lookups.threads == 2
    assert [host for host, _ in resolver.calls] == ["a.test", "b.test"]
    # once the resolver answers, the threads serve again
    resolver.release.set()
    assert lookups.resolve(resolver, "d.test", 80, 5.0) == ["127.0.0.1"]
    assert lookups.threads <= 2
    assert "c.test" not in [host for host, _ in resolver.calls]


def test_an_error_reaches_every_caller_of_the_lookup() -> None:
    lookups = Lookups()
    for _ in range(2):
        with pytest.raises(NameNotFound) as info:
            lookups.resolve(system_resolve, "no-such-name.invalid", 80, 10.0)
        assert info.value.code == "dns"


def test_a_forked_child_looks_names_up_on_threads_of_its_own() -> None:
    guard = Guard(["127.0.0.0/8"], resolver=Resolver())
    assert guard.resolve("warm.test", 80, 5.0) == ["127.0.0.1"]  # a lookup thread, now idle
    assert LOOKUPS.threads >= 1
    pid = os.fork()
    if pid == 0:  # the child: no thread came with it; a lookup must still be answered
        try:
            ok = guard.resolve("child.test", 80, 5.0) == ["127.0.0.1"]
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_video_proxy_answers_a_lookup_that_never_answers_as_a_timeout(
        origin: OriginServer, resolvers: list[Resolver]) -> None:
    origin.add("/v.bin", Response(b"video"))
    resolver = Resolver(hang=["slow.test"])
    resolvers.append(resolver)
    guard = Guard(["127.0.0.1/32"], resolver=resolver)
    with EgressProxy(guard, connect_timeout=0.2) as proxy, \
            httpx.Client(proxy=proxy.url) as client:
        answer = client.get(f"http://slow.test:{origin.port}/v.bin")
    assert answer.status_code == 502 and answer.headers["x-archiver-error"] == "timeout"
    assert [f.code for f in proxy.failures] == ["timeout"]
    assert origin.hits["/v.bin"] == 0
