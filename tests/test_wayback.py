"""Route ``wayback``: a dead original recovered from a local Wayback Machine (CDX + ``id_``
replay, reached as https://web.archive.org through connect-to and the SSRF guard)."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.drivers.job import count_recovered
from archiver.errors import (
    ConnectFailed,
    HTTPPermanent,
    HTTPTransient,
    NameNotFound,
    NotMedia,
    Placeholder,
    TimedOut,
    TransientFetchError,
)
from archiver.fetch.http import HttpFetcher
from archiver.fetch.limits import LocalHostLimiter
from archiver.fetch.wayback import (
    Capture,
    is_gone,
    is_placeholder,
    nearest,
    parse_cdx,
    target_time,
    worth_recovering,
)
from archiver.manifest import Manifest
from archiver.models import Asset, Attempt, Citation, asset_id
from archiver.plan.routes import lookup_url, plan_routes
from archiver.settings import Settings, StoreSettings
from archiver.store import open_store
from tests.conftest import FIXTURES, TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.services import free_port
from tests.support.wayback import ENDPOINT, LocalWayback

ORIGIN = "http://zkres1.myzaker.com/202201/61dffb588e9f09129239e67d_1024.jpg"
PROXY = "https://cors.zfour.workers.dev/?"
ARTICLE_DATE = "2022-01-13T02:14:00Z"
OLD, NEAR, LATE = media.jpeg(30, 20, (1, 1, 1)), media.jpeg(31, 20, (2, 2, 2)), \
    media.jpeg(32, 20, (3, 3, 3))


@dataclass
class Site:
    origin: OriginServer  # the ZAKER CDN (http)
    tls: TLSOrigin  # the dead CORS proxy and the Wayback Machine (https)
    wayback: LocalWayback

    def settings(self, **wayback: object) -> Settings:
        return Settings.model_validate({
            "fetch": {"allow_private": ["127.0.0.0/8"], "ca_bundle": self.tls.ca_bundle,
                      "retries": 1, "backoff_base": 0.01,
                      "connect_to": [f"zkres1.myzaker.com:80:127.0.0.1:{self.origin.port}",
                                     f"cors.zfour.workers.dev:443:127.0.0.1:{self.tls.server.port}",
                                     self.wayback.connect_to()]},
            "wayback": {"endpoint": ENDPOINT, **wayback}})


@pytest.fixture
def site(origin: OriginServer, tls_origin: TLSOrigin) -> Site:
    tls_origin.server.proxy_dead = True  # the proxy answers 502 to everything
    return Site(origin, tls_origin, LocalWayback(tls_origin.server))


class RecordingLimiter(LocalHostLimiter):
    """The in-process limiter, remembering the pauses it was asked for."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.pauses: list[tuple[str, float]] = []

    def pause(self, host: str, seconds: float) -> None:
        self.pauses.append((host, seconds))
        super().pause(host, seconds)


def asset(origin: str = ORIGIN, date: str | None = ARTICLE_DATE) -> Asset:
    return Asset(origin, "image", proxies=(PROXY,),
                 citations=(Citation("zaker-seed", ("img[src]",), date),))


@pytest.fixture
def fetcher(site: Site) -> Iterator[HttpFetcher]:
    settings = site.settings()
    the_fetcher = HttpFetcher(settings, limiter=RecordingLimiter(settings))
    yield the_fetcher
    the_fetcher.close()


def recovered(fetcher: HttpFetcher, body: bytes) -> list[Attempt]:
    """Fetch the asset, check it came from the Wayback Machine with ``body``; the attempts."""
    attempts: list[Attempt] = []
    fetched = fetcher.fetch(asset(), attempts)
    try:
        assert fetched.route == "wayback" and fetched.blob.file.read() == body
    finally:
        fetched.close()
    return attempts


def codes(attempts: list[Attempt]) -> list[tuple[str, str | None]]:
    return [(a.route, a.error["code"] if a.error else None) for a in attempts]


def test_a_gone_original_behind_a_dead_proxy_comes_from_the_nearest_capture(
        site: Site, fetcher: HttpFetcher) -> None:
    site.wayback.capture(ORIGIN, "20150101000000", OLD)
    site.wayback.capture(ORIGIN, "20220110120000", NEAR)
    site.wayback.capture(ORIGIN, "20240101000000", LATE)
    attempts: list[Attempt] = []
    fetched = fetcher.fetch(asset(), attempts)
    try:
        assert fetched.route == "wayback" and fetched.blob.file.read() == NEAR
        assert fetched.blob.media_type == "image/jpeg" and fetched.facts["width"] == 31
        assert fetched.facts["wayback"] == {
            "timestamp": "20220110120000", "original": ORIGIN, "target": ARTICLE_DATE,
            "url": f"{ENDPOINT}/web/20220110120000id_/{ORIGIN}"}
        assert fetched.url == f"{ENDPOINT}/web/20220110120000id_/{ORIGIN}"
    finally:
        fetched.close()
    assert codes(attempts) == [("direct", "http-404"), ("proxy", "http-502"),
                               ("proxy", "http-502"), ("wayback", None), ("wayback", None)]
    (query,) = site.wayback.queries
    assert query["url"] == [ORIGIN] and query["output"] == ["json"]
    assert query["filter"] == ["statuscode:200"]
    hits = site.tls.server.hits
    assert hits[f"/web/20220110120000id_/{ORIGIN}"] == 1
    assert hits[f"/web/20150101000000id_/{ORIGIN}"] == hits[f"/web/20240101000000id_/{ORIGIN}"] == 0


def test_a_capture_that_is_an_html_page_is_refused_for_the_next_nearest(
        site: Site, fetcher: HttpFetcher) -> None:
    # Indexed as HTML: never asked for. Indexed as an image but replayed as an HTML page (a
    # soft 404 the crawler kept): fetched, refused by the sniffer, and the next one is taken.
    site.wayback.capture(ORIGIN, "20220113000000", b"<html>moved</html>", mimetype="text/html")
    site.wayback.capture(ORIGIN, "20220112000000", media.HTML_ERROR_PAGE,
                         content_type="text/html")
    site.wayback.capture(ORIGIN, "20211201000000", OLD)
    attempts: list[Attempt] = []
    fetched = fetcher.fetch(asset(), attempts)
    try:
        assert fetched.blob.file.read() == OLD
        assert fetched.facts["wayback"]["timestamp"] == "20211201000000"
    finally:
        fetched.close()
    assert codes(attempts)[-3:] == [("wayback", None), ("wayback", "not-media"),
                                    ("wayback", None)]
    assert site.tls.server.hits[f"/web/20220113000000id_/{ORIGIN}"] == 0


def test_a_429_from_the_cdx_server_pauses_the_host_and_the_lookup_is_asked_again(
        site: Site, fetcher: HttpFetcher) -> None:
    site.wayback.capture(ORIGIN, "20220110120000", NEAR)
    site.wayback.throttle(1)
    attempts = recovered(fetcher, NEAR)
    assert isinstance(fetcher.limiter, RecordingLimiter)
    assert fetcher.limiter.pauses == [("web.archive.org", 1.0)]
    assert codes(attempts)[-3:] == [("wayback", "http-429"), ("wayback", None),
                                    ("wayback", None)]
    assert len(site.wayback.queries) == 2


def test_a_429_past_the_deadline_leaves_the_asset_to_retry(site: Site) -> None:
    site.wayback.capture(ORIGIN, "20220110120000", NEAR)
    site.wayback.throttle(600)  # longer than wayback.deadline
    settings = site.settings(deadline=30)
    limiter = RecordingLimiter(settings)
    fetcher = HttpFetcher(settings, limiter=limiter)
    try:
        with pytest.raises(HTTPTransient) as info:
            fetcher.fetch(asset(), [])
    finally:
        fetcher.close()
    assert info.value.retryable  # retried by a later run or the Celery task, not failed for good
    # The host is paused for everyone all the same (Retry-After capped by retry_after_max),
    # and the asset is not to be tried again before the pause ends.
    assert limiter.pauses == [("web.archive.org", 120.0)]
    assert info.value.details["retry_in"] == 120.0


def test_a_throttled_lookup_is_retried_by_the_celery_task_after_the_pause(
        site: Site, redis_url: str, tmp_path: Path) -> None:
    from archiver.drivers.coordination import connect, paused_hosts
    from archiver.drivers.tasks import Worker, handle
    from archiver.errors import class_of

    site.wayback.capture(ORIGIN, "20220110120000", NEAR)
    site.wayback.throttle(90)
    base = site.settings(deadline=5).model_dump()
    broker = redis_url.rsplit("/", 1)[0] + "/4"
    settings = Settings.model_validate({**base, "store": {"url": str(tmp_path / "archive")},
                                        "celery": {"broker_url": broker}})
    with connect(settings) as client:
        client.flushdb()
    worker = Worker.open(settings)
    try:
        outcome = handle(asset(), worker, retries=0)
        assert outcome.retry == "transient" and outcome.delay >= 90  # not before the pause
        assert outcome.record is not None and outcome.record.error is not None
        assert outcome.record.error["code"] == "http-429"
        assert class_of(outcome.record.error).retryable
        assert 0 < paused_hosts(worker.claims.client)["web.archive.org"] <= 90
    finally:
        worker.claims.client.flushdb()
        worker.close()


def test_no_capture_keeps_the_origins_own_answer_as_the_headline(
        site: Site, fetcher: HttpFetcher) -> None:
    attempts: list[Attempt] = []
    with pytest.raises(HTTPPermanent) as info:
        fetcher.fetch(asset(), attempts)
    assert info.value.status == 404
    assert codes(attempts)[-1] == ("wayback", None)  # the lookup answered: nothing there


def test_throttled_or_failing_origins_are_not_sent_to_the_archive(
        site: Site, fetcher: HttpFetcher) -> None:
    site.wayback.capture(ORIGIN, "20220110120000", NEAR)
    site.origin.add("/202201/61dffb588e9f09129239e67d_1024.jpg",
                    Response(status=503, headers={"Retry-After": "0"}))
    with pytest.raises(HTTPTransient):
        fetcher.fetch(asset(), [])
    assert site.wayback.queries == []


def test_disabled_there_is_no_wayback_route(site: Site) -> None:
    settings = site.settings(enabled=False)
    assert [r.name for r in plan_routes(asset(), settings)] == ["direct", "proxy"]
    assert settings.fetch.rule_for("web.archive.org").rate is None
    fetcher = HttpFetcher(settings)
    try:
        with pytest.raises(HTTPPermanent):
            fetcher.fetch(asset(), [])
    finally:
        fetcher.close()
    assert site.wayback.queries == []


def test_a_redirect_to_a_placeholder_is_no_image_and_is_recovered(
        site: Site, fetcher: HttpFetcher) -> None:
    site.origin.add("/202201/61dffb588e9f09129239e67d_1024.jpg",
                    Response(status=302, redirect="/static/img/404.png"))
    site.origin.add("/static/img/404.png", Response(media.png(8, 8), content_type="image/png"))
    site.wayback.capture(ORIGIN, "20220110120000", NEAR)
    assert codes(recovered(fetcher, NEAR))[0] == ("direct", "placeholder")


def test_the_wayback_host_gets_the_archives_limits_through_rule_for() -> None:
    settings = Settings()
    rule = settings.fetch.rule_for("web.archive.org")
    assert rule.rate == 0.4 and rule.max_concurrency == 2  # 24 requests a minute
    assert settings.fetch.rule_for("example.com").rate is None
    custom = Settings.model_validate({"wayback": {"endpoint": "https://wb.example.org/",
                                                  "rate": 2}})
    assert custom.fetch.rule_for("wb.example.org").rate == 2
    # A configured rule for the host wins, field by field.
    mine = Settings.model_validate({"fetch": {"hosts": [{"pattern": "web.archive.org",
                                                         "rate": 0.1}]}})
    assert mine.fetch.rule_for("web.archive.org").rate == 0.1
    assert mine.fetch.rule_for("web.archive.org").max_concurrency == 2
    assert Settings.model_validate(settings.model_dump()) == settings  # stable on re-validation


def test_lookup_url_and_cdx_parsing() -> None:
    url = lookup_url("https://web.archive.org/", "http://a.example/x y.jpg?v=1", 50)
    assert url.startswith("https://web.archive.org/cdx/search/cdx?url="
                          "http%3A%2F%2Fa.example%2Fx%20y.jpg%3Fv%3D1&")
    assert "output=json" in url and "filter=statuscode%3A200" in url and "limit=50" in url
    body = (b'[["timestamp","original","mimetype","statuscode","digest"],'
            b'["20220110120000","http://a.example/x.jpg","image/jpeg","200","D1"],'
            b'["2019","http://a.example/x.jpg","image/jpeg","200","D2"],'
            b'["20221399000000","http://a.example/x.jpg","image/jpeg","200","D3"],'
            b'["20220101000000","javascript:alert(1)","image/jpeg","200","D4"],'
            b'["short"]]')
    assert [c.timestamp for c in parse_cdx(body)] == ["20220110120000", "20190101000000"]
    assert parse_cdx(b"") == [] and parse_cdx(b"[]") == []
    with pytest.raises(TransientFetchError, match="not JSON"):
        parse_cdx(b"<html>busy</html>")


def test_nearest_leaves_html_out_and_prefers_the_earlier_on_a_tie() -> None:
    target = datetime(2022, 1, 13, tzinfo=UTC)
    captures = [Capture("20220112000000", "u", "image/jpeg"),
                Capture("20220114000000", "u", "image/jpeg"),
                Capture("20220113000000", "u", "text/html"),
                Capture("20200101000000", "u", "warc/revisit")]
    assert [c.timestamp for c in nearest(captures, target)] == [
        "20220112000000", "20220114000000", "20200101000000"]


def test_target_time_is_the_earliest_article_date_else_first_seen_else_now() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    two = Asset(ORIGIN, "image", citations=(Citation("b", (), "2023-05-05T00:00:00Z"),
                                            Citation("a", (), "2021-02-02T00:00:00Z"),
                                            Citation("c", ())))
    assert target_time(two, now) == datetime(2021, 2, 2, tzinfo=UTC)
    seen = Asset(ORIGIN, "image", citations=(Citation("c", ()),),
                 first_seen="2024-03-03T00:00:00+00:00")
    assert target_time(seen, now) == datetime(2024, 3, 3, tzinfo=UTC)
    assert target_time(Asset(ORIGIN, "image"), now) == now


def _refused() -> ConnectFailed:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError as exc:
        try:
            raise ConnectFailed("refused") from exc
        except ConnectFailed as failed:
            return failed
    raise AssertionError("the closed port accepted a connection")


def test_what_counts_as_gone() -> None:
    assert is_gone(HTTPPermanent(404)) and is_gone(HTTPPermanent(410))
    assert is_gone(NameNotFound("x")) and is_gone(NotMedia("x")) and is_gone(Placeholder("x"))
    assert is_gone(_refused())
    assert not is_gone(HTTPPermanent(403)) and not is_gone(HTTPTransient(429))
    assert not is_gone(TimedOut("x")) and not is_gone(ConnectFailed("reset"))
    assert worth_recovering([("direct", HTTPPermanent(404)), ("proxy", HTTPTransient(502))])
    assert not worth_recovering([("direct", HTTPTransient(429)), ("proxy", HTTPPermanent(404))])
    assert worth_recovering([("proxy", HTTPPermanent(410))])
    assert worth_recovering([])  # a host rule that puts wayback first


def test_placeholders() -> None:
    globs = Settings().fetch.placeholders
    assert is_placeholder("http://a/x/1.jpg", "http://a/", globs)
    assert is_placeholder("http://a/x/1.jpg", "http://a/img/404.png", globs)
    assert is_placeholder("http://a/x/1.jpg", "http://a/static/image_not_found.gif", globs)
    assert not is_placeholder("http://a/x/1.jpg", "http://cdn.a/x/1.jpg", globs)
    assert not is_placeholder("http://a/x/1.jpg", "http://a/x/1.jpg", globs)
    assert not is_placeholder("http://a/x/1.jpg", "http://a/x/2.jpg", globs)


def test_archive_recovers_a_post_whose_origins_and_proxy_are_dead(
        site: Site, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archiver.cli.app import load_commands

    still, gif = "http://zkres1.myzaker.com/202201/dd01_1024.jpg", \
        "http://zkres1.myzaker.com/202201/dd02_raw.gif"
    animated = media.gif(40, 30)
    site.wayback.capture(still, "20120101000000", OLD)
    site.wayback.capture(still, "20220114080000", NEAR)
    site.wayback.capture(gif, "20220201000000", animated, mimetype="image/gif")
    rules = [f"zkres1.myzaker.com:80:127.0.0.1:{site.origin.port}",
             f"cors.zfour.workers.dev:443:127.0.0.1:{site.tls.server.port}",
             f"wayback.test:443:127.0.0.1:{site.tls.server.port}"]
    store = str(tmp_path / "archive")
    env = {"ARCHIVER_WAYBACK__ENABLED": "true",
           "ARCHIVER_WAYBACK__ENDPOINT": "https://wayback.test",
           "ARCHIVER_FETCH__CA_BUNDLE": site.tls.ca_bundle, "ARCHIVER_FETCH__RETRIES": "0"}
    cli = load_commands()
    result = CliRunner().invoke(cli, [
        "archive", str(FIXTURES / "wayback"), "--store", store, "--format", "jsonl",
        "--allow-private", "127.0.0.0/8", *[a for r in rules for a in ("--connect-to", r)]],
        env=env)
    assert result.exit_code == 0, result.output
    records = {r["origin"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == {still, gif}
    for origin, body, stamp in ((still, NEAR, "20220114080000"),
                                (gif, animated, "20220201000000")):
        record = records[origin]
        assert record["status"] == "archived" and record["route"] == "wayback"
        assert record["sha256"] == hashlib.sha256(body).hexdigest()
        assert record["extra"]["wayback"]["timestamp"] == stamp
        assert record["fetched_url"] == f"https://wayback.test/web/{stamp}id_/{origin}"
        assert record["citations"] == [{"article": "zaker-gone", "where": record["citations"][0][
            "where"], "date": "2022-01-13T02:14:00Z"}]
        assert [a["route"] for a in record["attempts"]][:2] == ["direct", "proxy"]
        with open_store(StoreSettings(url=store)) as opened:
            assert opened.get_bytes(record["key"]) == body
    assert "archived 2 (2 recovered from the Wayback Machine)" in result.stderr
    with open_store(StoreSettings(url=store)) as opened:  # what enqueue --wait counts too
        summaries = Manifest(opened).summaries()
    assert count_recovered(summaries) == 2
    assert count_recovered(summaries, {asset_id(still)}) == 1
    assert count_recovered(summaries, {"another"}) == 0
    assert site.origin.hits["/202201/dd02_1024.jpg"] == 0  # the GIF's still is not fetched

    status = CliRunner().invoke(cli, ["status", "--store", store], env={
        "ARCHIVER_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert "manifest        2 archived (2 recovered from the Wayback Machine), 0 failed" \
        in status.stdout
