"""The route ladder per asset: direct, proxy re-wrapped, mirrors, per-host order."""

from __future__ import annotations

from archiver.fetch.retry import backoff, parse_retry_after
from archiver.fetch.routes import Route, plan_routes, route_order
from archiver.models import Asset
from archiver.settings import Settings

ORIGIN = "http://zkres1.myzaker.com/201907/5d2d8a9c77ac6444da0067a3_1024.jpg"
ZFOUR = "https://cors.zfour.workers.dev/?"


def test_default_ladder_is_direct_then_each_proxy() -> None:
    asset = Asset(origin=ORIGIN, kind="image", proxies=(ZFOUR, "https://wsrv.nl/?url="))
    assert plan_routes(asset, Settings()) == [
        Route("direct", ORIGIN),
        Route("proxy", ZFOUR + ORIGIN),
        Route(
            "proxy",
            "https://wsrv.nl/?url=http%3A%2F%2Fzkres1.myzaker.com%2F201907%2F"
            "5d2d8a9c77ac6444da0067a3_1024.jpg",
        ),
    ]


def test_host_rule_order_and_mirrors() -> None:
    settings = Settings.model_validate(
        {
            "fetch": {
                "hosts": [
                    {"pattern": "*.myzaker.com", "routes": ["mirror", "proxy", "direct"]},
                    {"pattern": "*", "max_concurrency": 2},
                ],
                "mirrors": [
                    {
                        "prefix": "http://zkres1.myzaker.com/",
                        "replace": "https://mirror.example.org/zaker/",
                    },
                    {"prefix": "http://elsewhere/", "replace": "http://x/"},
                ],
            }
        }
    )
    asset = Asset(origin=ORIGIN, kind="image", proxies=(ZFOUR,))
    assert [r.name for r in plan_routes(asset, settings)] == ["mirror", "proxy", "direct"]
    assert plan_routes(asset, settings)[0].url == (
        "https://mirror.example.org/zaker/201907/5d2d8a9c77ac6444da0067a3_1024.jpg"
    )
    # Hosts without a rule that sets routes keep the default order.
    assert route_order("https://static.cnbetacdn.com/a.gif", settings) == [
        "direct",
        "proxy",
        "mirror",
    ]


def test_no_proxy_and_unknown_prefix_are_left_out() -> None:
    asset = Asset(origin=ORIGIN, kind="image", proxies=("https://unknown.example/weird",))
    assert plan_routes(asset, Settings()) == [Route("direct", ORIGIN)]
    only_proxy = Settings.model_validate({"fetch": {"routes": ["proxy"]}})
    assert plan_routes(Asset(origin=ORIGIN, kind="image"), only_proxy) == []


def test_duplicate_urls_are_tried_once() -> None:
    asset = Asset(origin=ORIGIN, kind="gif", proxies=(ZFOUR, ZFOUR))
    assert len(plan_routes(asset, Settings())) == 2


def test_backoff_grows_with_jitter_and_cap() -> None:
    assert backoff(1, 0.5, 30, rand=lambda: 0.0) == 0.25
    assert backoff(1, 0.5, 30, rand=lambda: 1.0) == 0.5
    assert backoff(4, 0.5, 30, rand=lambda: 1.0) == 4.0
    assert backoff(20, 0.5, 30, rand=lambda: 1.0) == 30.0


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", 120) == 7.0
    assert parse_retry_after("100000", 120) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", 120, now=lambda: now) == 20.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", 120, now=lambda: now) == 0.0
    assert parse_retry_after("soon", 120) is None
    assert parse_retry_after(None, 120) is None
