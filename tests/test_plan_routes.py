"""The route ladder per asset: direct, proxy re-wrapped, mirrors, per-host order."""

from __future__ import annotations

from archiver.models import Asset
from archiver.plan.routes import Route, lookup_url, plan_routes, route_order
from archiver.settings import Settings

ORIGIN = "http://zkres1.myzaker.com/201907/5d2d8a9c77ac6444da0067a3_1024.jpg"
ZFOUR = "https://cors.zfour.workers.dev/?"


def test_default_ladder_is_direct_then_each_proxy_then_the_wayback_machine() -> None:
    asset = Asset(origin=ORIGIN, kind="image", proxies=(ZFOUR, "https://wsrv.nl/?url="))
    assert plan_routes(asset, Settings()) == [
        Route("direct", ORIGIN),
        Route("proxy", ZFOUR + ORIGIN),
        Route(
            "proxy",
            "https://wsrv.nl/?url=http%3A%2F%2Fzkres1.myzaker.com%2F201907%2F"
            "5d2d8a9c77ac6444da0067a3_1024.jpg",
        ),
        Route("wayback", lookup_url("https://web.archive.org", ORIGIN, 2000)),
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
        "wayback",
        "alternate",
    ]


def test_no_proxy_and_unknown_prefix_are_left_out() -> None:
    asset = Asset(origin=ORIGIN, kind="image", proxies=("https://unknown.example/weird",))
    assert [r.name for r in plan_routes(asset, Settings())] == ["direct", "wayback"]
    only_proxy = Settings.model_validate({"fetch": {"routes": ["proxy"]}})
    assert plan_routes(Asset(origin=ORIGIN, kind="image"), only_proxy) == []


def test_duplicate_urls_are_tried_once() -> None:
    asset = Asset(origin=ORIGIN, kind="gif", proxies=(ZFOUR, ZFOUR))
    assert [r.name for r in plan_routes(asset, Settings())] == ["direct", "proxy", "wayback"]


def test_an_images_alternates_come_last_directly_then_through_the_proxy() -> None:
    thumb = "http://zkres1.myzaker.com/201907/5d2d8a9c77ac6444da0067a3_640.jpg"
    image = Asset(origin=ORIGIN, kind="image", proxies=(ZFOUR,), alternates=(thumb,))
    routes = [(r.name, r.url) for r in plan_routes(image, Settings())]
    assert routes[-2:] == [("alternate", thumb), ("alternate", ZFOUR + thumb)]
    # A GIF's still is another picture, not the GIF: no alternate route.
    gif = Asset(origin=ORIGIN.replace("_1024.jpg", "_raw.gif"), kind="gif", alternates=(thumb,))
    assert "alternate" not in [r.name for r in plan_routes(gif, Settings())]
