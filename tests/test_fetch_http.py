"""The HTTP fetcher against a real local origin: routes, retries, caps, sniffing, redirects,
TLS through the guarded backend and an egress proxy. Fake hostnames reach the origin through
connect-to rules; waits go through a recorded ``sleep`` so nothing really sleeps."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from archiver.errors import FetchError
from archiver.fetch.http import HttpFetcher
from archiver.fetch.limits import LocalHostLimiter
from archiver.models import Asset, Attempt
from archiver.settings import Settings
from tests.conftest import TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response

ZAKER = "http://zkres1.myzaker.com"
PROXY = "http://cors.zfour.workers.dev/?"


def make_settings(origin: OriginServer, **fetch: Any) -> Settings:
    base: dict[str, Any] = {
        "allow_private": ["127.0.0.0/8"],
        "connect_to": [
            f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}",
            f"cors.zfour.workers.dev:80:127.0.0.1:{origin.port}",
            f"mirror.example.org:80:127.0.0.1:{origin.port}",
        ],
        "retries": 2,
        "backoff_base": 0.5,
    }
    base.update(fetch)
    # The wayback route has its own tests (test_wayback.py): here a gone origin stays gone.
    return Settings.model_validate({"fetch": base, "wayback": {"enabled": False}})


class Run:
    """One fetcher with recorded sleeps; ``fetch`` returns (Fetched or error, attempts)."""

    def __init__(
        self,
        settings: Settings,
        limiter: LocalHostLimiter | None = None,
        on_sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.slept: list[float] = []
        self.on_sleep = on_sleep
        self.fetcher = HttpFetcher(settings, limiter=limiter, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.on_sleep:
            self.on_sleep(seconds)

    def ok(self, asset: Asset) -> tuple[Any, list[Attempt]]:
        attempts: list[Attempt] = []
        fetched = self.fetcher.fetch(asset, attempts)
        return fetched, attempts

    def fail(self, asset: Asset) -> tuple[FetchError, list[Attempt]]:
        attempts: list[Attempt] = []
        with pytest.raises(FetchError) as info:
            self.fetcher.fetch(asset, attempts)
        return info.value, attempts


@pytest.fixture
def run(origin: OriginServer) -> Iterator[Run]:
    r = Run(make_settings(origin))
    yield r
    r.fetcher.close()


def codes(attempts: list[Attempt]) -> list[tuple[str, str | None]]:
    return [(a.route, a.error["code"] if a.error else None) for a in attempts]


@pytest.mark.parametrize(
    ("name", "data", "kind", "ctype", "facts"),
    [
        ("a.jpg", media.jpeg(64, 48), "image", "image/jpeg", {"width": 64, "height": 48}),
        ("b.png", media.png(32, 32), "image", "image/png", {"width": 32, "height": 32}),
        ("c.gif", media.gif(40, 30), "gif", "image/gif", {"width": 40, "height": 30}),
        ("d.mp4", media.mp4(200_000), "video", "video/mp4", {}),
    ],
)
def test_direct_fetch_of_real_media(
    origin: OriginServer,
    run: Run,
    name: str,
    data: bytes,
    kind: str,
    ctype: str,
    facts: dict[str, int],
) -> None:
    origin.add(f"/{name}", Response(body=data, content_type="text/plain"))  # lying type
    fetched, attempts = run.ok(Asset(origin=f"{ZAKER}/{name}", kind=kind, proxies=(PROXY,)))
    try:
        assert fetched.blob.sha256 == hashlib.sha256(data).hexdigest()
        assert fetched.blob.file.read() == data
        assert (fetched.blob.size, fetched.blob.media_type) == (len(data), ctype)
        assert {k: fetched.facts[k] for k in facts} == facts
        assert (fetched.route, fetched.http_status) == ("direct", 200)
    finally:
        fetched.close()
    assert codes(attempts) == [("direct", None)]
    assert attempts[0].status == 200 and attempts[0].at
    host, _path, headers = origin.requests[0]
    assert host == "zkres1.myzaker.com"  # the URL's Host header survives connect-to
    assert "Referer" not in headers and headers["User-Agent"].startswith("Mozilla/5.0")
    assert origin.proxy_hits == {}


def test_origin_refusing_referer_is_fetched_directly(origin: OriginServer, run: Run) -> None:
    origin.add("/hotlink.jpg", Response(body=media.jpeg(), reject_referer=True))
    fetched, _ = run.ok(Asset(origin=f"{ZAKER}/hotlink.jpg", kind="image"))
    fetched.close()
    assert fetched.route == "direct"


def test_cors_proxy_route_after_direct_fails(origin: OriginServer, run: Run) -> None:
    data = media.jpeg(10, 10)
    origin.add("/gone.jpg", Response(status=403, body=b"forbidden", content_type="text/plain"))
    origin.add("proxy:/gone.jpg", Response(body=data, content_type="image/jpeg"))
    fetched, attempts = run.ok(Asset(origin=f"{ZAKER}/gone.jpg", kind="image", proxies=(PROXY,)))
    fetched.close()
    assert (fetched.route, fetched.url) == ("proxy", f"{PROXY}{ZAKER}/gone.jpg")
    assert fetched.blob.sha256 == hashlib.sha256(data).hexdigest()
    assert codes(attempts) == [("direct", "http-403"), ("proxy", None)]
    assert origin.proxy_hits[f"{ZAKER}/gone.jpg"] == 1


def test_proxy_answering_html_with_200_is_not_media(origin: OriginServer) -> None:
    settings = make_settings(origin, routes=["proxy", "direct"])
    origin.add("proxy:/err.jpg", Response(body=media.HTML_ERROR_PAGE, content_type="image/jpeg"))
    origin.add("/err.jpg", Response(body=media.jpeg()))
    r = Run(settings)
    try:
        fetched, attempts = r.ok(Asset(origin=f"{ZAKER}/err.jpg", kind="image", proxies=(PROXY,)))
        fetched.close()
        assert codes(attempts) == [("proxy", "not-media"), ("direct", None)]
        assert attempts[0].status == 200
        # Only HTML on every route: a permanent not-media, no retries.
        origin.add("/err.jpg", Response(body=b"<html>oops</html>" * 100))
        error, attempts = r.fail(Asset(origin=f"{ZAKER}/err.jpg", kind="image", proxies=(PROXY,)))
        assert error.code == "not-media" and not error.retryable
        assert len(attempts) == 2 and r.slept == []
    finally:
        r.fetcher.close()


def test_dead_proxy_is_retried_but_the_origin_404_is_the_headline(
        origin: OriginServer, run: Run) -> None:
    origin.proxy_dead = True
    origin.add("/x.gif", Response(status=404, body=b"nope"))
    error, attempts = run.fail(Asset(origin=f"{ZAKER}/x.gif", kind="gif", proxies=(PROXY,)))
    # 404 at the origin is permanent (tried once); the dead worker's 502 is retried; the
    # origin's own answer says more about the asset than the proxy's trouble.
    assert codes(attempts) == [("direct", "http-404")] + [("proxy", "http-502")] * 3
    assert error.code == "http-404" and not error.retryable
    assert len(run.slept) == 2


def test_404_everywhere_is_permanent_without_retries(origin: OriginServer, run: Run) -> None:
    error, attempts = run.fail(Asset(origin=f"{ZAKER}/missing.jpg", kind="image", proxies=(PROXY,)))
    assert error.code == "http-404" and not error.retryable
    assert codes(attempts) == [("direct", "http-404"), ("proxy", "http-404")]
    assert run.slept == []


def test_403_on_every_route(origin: OriginServer, run: Run) -> None:
    origin.add("/f.jpg", Response(status=403))
    origin.add("proxy:/f.jpg", Response(status=403))
    error, _ = run.fail(Asset(origin=f"{ZAKER}/f.jpg", kind="image", proxies=(PROXY,)))
    assert error.code == "http-403"


class RecordingLimiter(LocalHostLimiter):
    """The real local limiter on the fetcher's fake clock, remembering the pauses asked for."""

    def __init__(self, settings: Settings) -> None:
        self.now = 0.0
        self.pauses: list[tuple[str, float]] = []
        super().__init__(settings, clock=lambda: self.now, sleep=self.advance)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def pause(self, host: str, seconds: float) -> None:
        self.pauses.append((host, seconds))
        super().pause(host, seconds)


def _busy_then_ok(origin: OriginServer, status: int, retry_after: str, cap: float = 120.0
                  ) -> tuple[list[Attempt], list[float], RecordingLimiter]:
    """Fetch an image whose first answer is ``status`` with ``Retry-After``, then the image;
    the attempts, the sleeps and the limiter that heard about the pause."""
    settings = make_settings(origin, retry_after_max=cap)
    limiter = RecordingLimiter(settings)
    r = Run(settings, limiter=limiter, on_sleep=limiter.advance)
    origin.add("/busy.jpg", [Response(status=status, headers={"Retry-After": retry_after}),
                             Response(body=media.jpeg())])
    try:
        fetched, attempts = r.ok(Asset(origin=f"{ZAKER}/busy.jpg", kind="image"))
        fetched.close()
    finally:
        r.fetcher.close()
    return attempts, r.slept, limiter


def test_429_retry_after_pauses_host_then_succeeds(origin: OriginServer) -> None:
    attempts, slept, limiter = _busy_then_ok(origin, 429, "7")
    assert codes(attempts) == [("direct", "http-429"), ("direct", None)]
    assert attempts[0].status == 429
    assert slept == [7.0]
    # The pause was announced to the limiter so every thread holds off that host.
    assert limiter.pauses == [("zkres1.myzaker.com", 7.0)]


def test_retry_after_is_capped(origin: OriginServer) -> None:
    attempts, slept, limiter = _busy_then_ok(origin, 503, "86400", cap=3.0)
    assert codes(attempts) == [("direct", "http-503"), ("direct", None)]
    assert slept == [3.0] and limiter.pauses == [("zkres1.myzaker.com", 3.0)]


def test_503_then_success_with_backoff(origin: OriginServer, run: Run) -> None:
    origin.add(
        "/flaky.png", [Response(status=503), Response(status=500), Response(body=media.png())]
    )
    fetched, attempts = run.ok(Asset(origin=f"{ZAKER}/flaky.png", kind="image"))
    fetched.close()
    assert codes(attempts) == [("direct", "http-503"), ("direct", "http-500"), ("direct", None)]
    # Equal jitter: retry n waits between half and all of base * 2**(n-1).
    assert 0.25 <= run.slept[0] <= 0.5 and 0.5 <= run.slept[1] <= 1.0


def test_body_shorter_than_content_length_is_truncated(origin: OriginServer, run: Run) -> None:
    data = media.jpeg(200, 200)
    origin.add("/cut.jpg", [Response(body=data, truncate_to=len(data) // 2), Response(body=data)])
    fetched, attempts = run.ok(Asset(origin=f"{ZAKER}/cut.jpg", kind="image"))
    fetched.close()
    assert codes(attempts) == [("direct", "truncated"), ("direct", None)]
    assert fetched.blob.size == len(data)


def test_read_timeout_and_deadline(origin: OriginServer) -> None:
    r = Run(make_settings(origin, read_timeout=0.2, retries=0))
    origin.add("/stall.jpg", Response(body=media.jpeg(), delay=1.0))
    try:
        error, attempts = r.fail(Asset(origin=f"{ZAKER}/stall.jpg", kind="image"))
        assert error.code == "timeout" and error.retryable
        assert codes(attempts) == [("direct", "timeout")]
    finally:
        r.fetcher.close()
    # Each chunk arrives within the read timeout, but the whole body outlives its deadline.
    r = Run(make_settings(origin, deadline=0.4, download_deadline=0.4, read_timeout=5.0,
                          retries=3))
    origin.add("/drip.jpg", Response(body=media.jpeg(300, 300), chunk=200, drip=0.05))
    try:
        error, attempts = r.fail(Asset(origin=f"{ZAKER}/drip.jpg", kind="image", proxies=(PROXY,)))
        assert error.code == "timeout"
        assert attempts[0].error is not None and "deadline" in attempts[0].error["message"]
        assert origin.proxy_hits == {}  # the deadline is per asset, not per route
    finally:
        r.fetcher.close()


def test_too_large_by_content_length_stops_the_ladder(origin: OriginServer) -> None:
    r = Run(make_settings(origin, max_bytes_image=1000))
    origin.add("/big.jpg", Response(body=media.jpeg(400, 400)))
    try:
        error, attempts = r.fail(Asset(origin=f"{ZAKER}/big.jpg", kind="image", proxies=(PROXY,)))
    finally:
        r.fetcher.close()
    assert error.code == "too-large"
    assert codes(attempts) == [("direct", "too-large")]
    assert origin.proxy_hits == {}


def _no_length(body: bytes, encoding: str | None = None) -> Response:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        if encoding is not None:
            h.send_header("Content-Encoding", encoding)
        h.send_header("Connection", "close")
        h.end_headers()
        for i in range(0, len(body), 4096):
            h.wfile.write(body[i : i + 4096])
        h.close_connection = True

    return Response(handler=handler)


def test_too_large_while_streaming(origin: OriginServer) -> None:
    r = Run(make_settings(origin, max_bytes_image=20_000, max_bytes_video=10_000_000))
    body = media.jpeg(200, 200) + b"\0" * 100_000
    origin.add("/nolen.jpg", _no_length(body))
    # gzip: 2 KB on the wire, 500 KB decoded; the cap counts decoded bytes.
    bomb = media.jpeg(8, 8) + b"\0" * 500_000
    origin.add(
        "/bomb.jpg", Response(body=gzip.compress(bomb), headers={"Content-Encoding": "gzip"})
    )
    try:
        for name in ("nolen.jpg", "bomb.jpg"):
            error, _ = r.fail(Asset(origin=f"{ZAKER}/{name}", kind="image"))
            assert error.code == "too-large"
        # The same body is fine under the video cap, read to the end without a length.
        origin.add("/nolen.mp4", _no_length(media.mp4(150_000)))
        fetched, _ = r.ok(Asset(origin=f"{ZAKER}/nolen.mp4", kind="video"))
        fetched.close()
        assert fetched.blob.size == len(media.mp4(150_000))
    finally:
        r.fetcher.close()


@pytest.mark.parametrize("lean", [False, True])
def test_an_extensionless_url_is_capped_by_what_its_bytes_are(origin: OriginServer,
                                                               lean: bool) -> None:
    """A GIF at a URL naming no file type (an image asset: a CDN's extensionless URL) is held
    to the GIF cap, as at .gif, where the image cap refused it as too-large; a still there is
    held to the image cap from its first bytes on (a declared length over it stops the read
    right after them), and bytes that are no media are refused at their head, as before."""
    r = Run(make_settings(origin, max_bytes_image=100_000, max_bytes_gif=1_000_000,
                          lean_http=lean))
    gif = media.gif() + b"\0" * 300_000  # padding after the trailer: still a GIF
    still = media.jpeg(64, 48) + b"\0" * 300_000
    routes = {"/anim": Response(gif), "/anim.gif": Response(gif), "/anim-nolen": _no_length(gif),
              "/anim-gz": Response(gzip.compress(gif), headers={"Content-Encoding": "gzip"}),
              "/still": Response(still), "/still-nolen": _no_length(still),
              "/huge": Response(media.gif() + b"\0" * 1_200_000),
              "/page": _no_length(b"<!doctype html><p>" + b"x" * 300_000)}
    for path, response in routes.items():
        origin.add(path, response)
    try:
        for path, kind in [("/anim", "image"), ("/anim.gif", "gif"), ("/anim-nolen", "image"),
                           ("/anim-gz", "image")]:
            fetched, _ = r.ok(Asset(origin=f"{ZAKER}{path}", kind=kind))
            fetched.close()
            assert (fetched.blob.size, fetched.blob.media_type) == (len(gif), "image/gif"), path
        error, _ = r.fail(Asset(origin=f"{ZAKER}/still", kind="image"))
        assert (error.code, error.details["cap"], error.details["size"]) == (
            "too-large", 100_000, len(still))
        assert str(error) == f"Content-Length {len(still)} exceeds the 100000-byte cap for image"
        error, _ = r.fail(Asset(origin=f"{ZAKER}/still-nolen", kind="image"))
        assert (error.code, error.details["cap"]) == ("too-large", 100_000)
        error, _ = r.fail(Asset(origin=f"{ZAKER}/huge", kind="image"))
        assert (error.code, error.details["cap"]) == ("too-large", 1_000_000)
        assert str(error).endswith("exceeds the 1000000-byte cap for image or gif")
        error, _ = r.fail(Asset(origin=f"{ZAKER}/page", kind="image"))
        assert error.code == "not-media"
        # A URL that names its type keeps that type's cap, whatever the bytes.
        origin.add("/anim.jpg", Response(gif))
        error, _ = r.fail(Asset(origin=f"{ZAKER}/anim.jpg", kind="image"))
        assert (error.code, error.details["cap"]) == ("too-large", 100_000)
    finally:
        r.fetcher.close()


@pytest.mark.parametrize("lean", [False, True])
def test_bytes_on_the_wire_are_capped_too(origin: OriginServer, lean: bool) -> None:
    """A gzip stream followed by zero padding (ignored) or by empty gzip members decodes to a
    small image: the bytes received still stop at the cap (about; deflate's overhead)."""
    r = Run(make_settings(origin, max_bytes_image=100_000, lean_http=lean))
    image = media.jpeg(8, 8)
    bodies = {"padding": gzip.compress(image) + b"\0" * 1_000_000,
              "members": gzip.compress(image) + gzip.compress(b"") * 50_000}
    try:
        for name, body in bodies.items():
            origin.add(f"/{name}.jpg", _no_length(body, "gzip"))
            error, _ = r.fail(Asset(origin=f"{ZAKER}/{name}.jpg", kind="image"))
            assert error.code == "too-large", name
    finally:
        r.fetcher.close()


def test_gzip_is_stored_decoded(origin: OriginServer, run: Run) -> None:
    data = media.png(100, 100)
    origin.add("/z.png", Response(body=gzip.compress(data), headers={"Content-Encoding": "gzip"}))
    fetched, _ = run.ok(Asset(origin=f"{ZAKER}/z.png", kind="image"))
    fetched.close()
    assert (fetched.blob.size, fetched.blob.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_redirects_five_allowed_sixth_fails(origin: OriginServer, run: Run) -> None:
    for i in range(6):
        origin.add(f"/r{i}", Response(status=302 if i % 2 else 301, redirect=f"/r{i + 1}"))
    origin.add("/r6", Response(body=media.gif()))
    fetched, _ = run.ok(Asset(origin=f"{ZAKER}/r1", kind="gif"))
    fetched.close()
    assert fetched.url == f"{ZAKER}/r6"
    error, attempts = run.fail(Asset(origin=f"{ZAKER}/r0", kind="gif"))
    assert error.code == "redirects" and codes(attempts) == [("direct", "redirects")]
    assert origin.hits["/r6"] == 1


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://zkres1.myzaker.com/a.jpg"])
def test_redirect_to_other_scheme_blocked(origin: OriginServer, run: Run, target: str) -> None:
    origin.add("/to-file.jpg", Response(status=302, redirect=target))
    error, _ = run.fail(Asset(origin=f"{ZAKER}/to-file.jpg", kind="image"))
    assert error.code == "blocked"


def test_video_asset_serving_an_image_is_not_media(origin: OriginServer, run: Run) -> None:
    origin.add("/v.mp4", Response(body=media.jpeg()))
    error, _ = run.fail(Asset(origin=f"{ZAKER}/v.mp4", kind="video"))
    assert error.code == "not-media"


def test_mirror_route(origin: OriginServer) -> None:
    r = Run(
        make_settings(
            origin, mirrors=[{"prefix": f"{ZAKER}/", "replace": "http://mirror.example.org/m/"}]
        )
    )
    origin.add("/m/only.jpg", Response(body=media.jpeg()))
    try:
        fetched, attempts = r.ok(Asset(origin=f"{ZAKER}/only.jpg", kind="image"))
        fetched.close()
    finally:
        r.fetcher.close()
    assert codes(attempts) == [("direct", "http-404"), ("mirror", None)]


def test_matches_and_example_urls(run: Run) -> None:
    f = run.fetcher
    for url in f.example_urls:
        kind = "video" if url.endswith(".mp4") else "image"
        assert f.matches(Asset(origin=url, kind=kind))
    assert not f.matches(Asset(origin="https://v.qq.com/x/page/a0031x2y3z4.html", kind="video"))
    assert not f.matches(Asset(origin="https://cdn.example/live/index.m3u8", kind="video"))
    assert not f.matches(Asset(origin="data:image/png;base64,AAAA", kind="image"))


def test_per_host_concurrency_cap(origin: OriginServer) -> None:
    settings = make_settings(origin, per_host_concurrency=2)
    r = Run(settings)
    for i in range(6):
        origin.add(f"/p{i}.jpg", Response(body=media.jpeg(), delay=0.5))
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            r.ok(Asset(origin=f"{ZAKER}/p{i}.jpg", kind="image"))[0].close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        r.fetcher.close()
    assert errors == []
    assert origin.max_inflight["zkres1.myzaker.com"] == 2


# --- TLS through the guarded backend -------------------------------------------------------


def test_https_proxy_route_verifies_certificate_for_url_host(
    origin: OriginServer, tls_origin: TLSOrigin
) -> None:
    ca_file = tls_origin.ca_bundle
    data = media.webp()
    origin.add("/w.webp", Response(status=404))
    tls_origin.server.add("proxy:/w.webp", Response(body=data, content_type="image/webp"))
    connect = f"cors.zfour.workers.dev:443:127.0.0.1:{tls_origin.server.port}"
    asset = Asset(
        origin=f"{ZAKER}/w.webp", kind="image", proxies=("https://cors.zfour.workers.dev/?",)
    )
    r = Run(
        make_settings(
            origin,
            ca_bundle=ca_file,
            retries=0,
            connect_to=[f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}", connect],
        )
    )
    try:
        fetched, _ = r.ok(asset)
        fetched.close()
        assert fetched.route == "proxy" and fetched.blob.media_type == "image/webp"
    finally:
        r.fetcher.close()
    # Without our CA the certificate does not verify: the fetch fails, nothing is accepted.
    r = Run(
        make_settings(
            origin,
            retries=0,
            connect_to=[f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}", connect],
        )
    )
    try:
        error, attempts = r.fail(asset)
        assert codes(attempts) == [("direct", "http-404"), ("proxy", "connect")]
        assert error.code == "http-404"  # the origin's own answer is the headline
        proxy_error = attempts[-1].error
        assert proxy_error is not None and "CERTIFICATE_VERIFY_FAILED" in proxy_error["message"]
    finally:
        r.fetcher.close()


# --- egress proxy ---------------------------------------------------------------------------


@pytest.fixture
def forward_proxy(origin: OriginServer) -> Iterator[list[str]]:
    """A plain HTTP forward proxy that relays absolute-form requests to the origin server."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            target = self.path.split("/", 3)
            conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=10)
            conn.request(
                "GET", "/" + (target[3] if len(target) > 3 else ""), headers={"Host": target[2]}
            )
            resp = conn.getresponse()
            body = resp.read()
            self.send_response(resp.status)
            self.send_header("Content-Length", str(len(body)))
            if resp.getheader("Location"):
                self.send_header("Location", resp.getheader("Location", ""))
            self.end_headers()
            self.wfile.write(body)
            conn.close()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    seen.append(f"http://127.0.0.1:{server.server_address[1]}")
    yield seen
    server.shutdown()
    server.server_close()


def test_egress_proxy_per_host_pattern(origin: OriginServer, forward_proxy: list[str]) -> None:
    proxy_url = forward_proxy.pop(0)
    data = media.jpeg(20, 20)
    origin.add("/via.jpg", Response(body=data))
    settings = make_settings(
        origin, hosts=[{"pattern": "*.myzaker.com", "egress_proxy": proxy_url}]
    )
    r = Run(settings)
    try:
        fetched, _ = r.ok(Asset(origin=f"{ZAKER}/via.jpg", kind="image"))
        fetched.close()
        assert fetched.blob.sha256 == hashlib.sha256(data).hexdigest()
        assert forward_proxy == [f"{ZAKER}/via.jpg"]
    finally:
        r.fetcher.close()
    # The target host is still checked before anything is sent to the proxy.
    blocked = Settings.model_validate(
        {"fetch": {"hosts": [{"pattern": "*", "egress_proxy": proxy_url}], "retries": 0}}
    )
    r = Run(blocked)
    try:
        error, _ = r.fail(Asset(origin="http://127.0.0.1/secret.jpg", kind="image"))
        assert error.code == "blocked"
        assert forward_proxy == [f"{ZAKER}/via.jpg"]
    finally:
        r.fetcher.close()


@pytest.fixture
def socks_proxy(origin: OriginServer) -> Iterator[tuple[str, list[bytes]]]:
    """A minimal SOCKS5 (no auth, CONNECT) server relaying every tunnel to the origin; yields
    its URL and the list of target hosts its CONNECTs asked for."""
    import socket

    requested: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def serve(client: socket.socket) -> None:
        client.recv(3)  # VER, NMETHODS, METHODS (no auth)
        client.sendall(b"\x05\x00")
        head = client.recv(4)  # VER, CMD, RSV, ATYP
        if head[3] == 3:
            requested.append(client.recv(client.recv(1)[0]))
        else:
            requested.append(client.recv(4 if head[3] == 1 else 16))
        client.recv(2)  # port: ignored, every tunnel goes to the origin
        upstream = socket.create_connection(("127.0.0.1", origin.port))
        client.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"socks5://127.0.0.1:{listener.getsockname()[1]}", requested
    listener.close()


def test_socks5_egress_proxy(origin: OriginServer, socks_proxy: tuple[str, list[bytes]]) -> None:
    url, requested = socks_proxy
    data = media.png(12, 12)
    origin.add("/s.png", Response(body=data))
    settings = make_settings(origin, egress_proxy=url)
    r = Run(settings)
    try:
        fetched, _ = r.ok(Asset(origin=f"{ZAKER}/s.png", kind="image"))
        fetched.close()
    finally:
        r.fetcher.close()
    assert fetched.blob.sha256 == hashlib.sha256(data).hexdigest()
    assert origin.requests[0][0] == "zkres1.myzaker.com"
    assert requested == [b"zkres1.myzaker.com"]  # the tunnel went through the SOCKS proxy
