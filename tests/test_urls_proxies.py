"""Proxy unwrapping and re-wrapping (archiver.urls.proxies)."""

from __future__ import annotations

import pytest

from archiver.errors import ConfigError
from archiver.settings import DEFAULT_PROXIES, ProxyRule
from archiver.urls.proxies import unwrap, wrap

RULES = DEFAULT_PROXIES
ZAKER = "http://zkres1.myzaker.com/202201/61dffb588e9f09129239e67d_1024.jpg"


@pytest.mark.parametrize(
    ("url", "origin", "prefix"),
    [
        ("https://cors.zfour.workers.dev/?" + ZAKER, ZAKER, "https://cors.zfour.workers.dev/?"),
        ("https://cors.zfour.workers.dev/?http%3A%2F%2Fa.example%2Fx.jpg%3Fw%3D1",
         "http://a.example/x.jpg?w=1", "https://cors.zfour.workers.dev/?"),
        ("https://cors.zfour.workers.dev?http://a.example/x.jpg?w=1&h=2",
         "http://a.example/x.jpg?w=1&h=2", "https://cors.zfour.workers.dev/?"),
        ("https://wsrv.nl/?w=300&url=https%3A%2F%2Fa.example%2Fb.png", "https://a.example/b.png",
         "https://wsrv.nl/?url="),
        ("https://images.weserv.nl/?url=ssl:a.example/b.png", "https://a.example/b.png",
         "https://images.weserv.nl/?url="),
        ("https://images.weserv.nl/?url=a.example/b.png", "http://a.example/b.png",
         "https://images.weserv.nl/?url="),
        ("https://i0.wp.com/a.example/up/c.jpg?resize=1,2", "http://a.example/up/c.jpg",
         "https://i0.wp.com/"),
        ("https://i3.wp.com/a.example/up/c.jpg?ssl=1", "https://a.example/up/c.jpg",
         "https://i3.wp.com/"),
        ("https://my-proxy.someone.workers.dev/?https://a.example/d.gif",
         "https://a.example/d.gif", "https://my-proxy.someone.workers.dev/?"),
        # Nested: the outermost prefix is the one the article used.
        ("https://x.workers.dev/?https://cors.zfour.workers.dev/?http://a.example/e.png",
         "http://a.example/e.png", "https://x.workers.dev/?"),
    ],
)
def test_unwrap_known_proxies(url: str, origin: str, prefix: str) -> None:
    assert unwrap(url, RULES) == (origin, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/x.jpg",
        "https://site.workers.dev/?id=3",  # a workers.dev site's own page, not a proxy use
        "https://wsrv.nl/?w=3",  # no url parameter
        "https://i0.wp.com/nohost",  # no /<host>/<path>
        "mailto:someone@example.com",
        "http://[::1",  # unparsable
    ],
)
def test_not_a_proxy_use_is_unchanged(url: str) -> None:
    assert unwrap(url, RULES) == (url, None)


@pytest.mark.parametrize(
    ("url", "origin", "prefix", "again"),
    [
        # "?url=" before the inner URL, raw or percent-encoded: the prefix keeps the name, and
        # the proxy route sends the origin the same way, encoded.
        ("https://cors.zfour.workers.dev/?url=http://a.example/x.jpg", "http://a.example/x.jpg",
         "https://cors.zfour.workers.dev/?url=",
         "https://cors.zfour.workers.dev/?url=http%3A%2F%2Fa.example%2Fx.jpg"),
        ("https://corsproxy.io/?url=https%3A%2F%2Fa.example%2Fy.jpg%3Fw%3D1%26h%3D2",
         "https://a.example/y.jpg?w=1&h=2", "https://corsproxy.io/?url=",
         "https://corsproxy.io/?url=https%3A%2F%2Fa.example%2Fy.jpg%3Fw%3D1%26h%3D2"),
        # CORS-anywhere style: the inner URL, scheme and query included, in the path.
        ("https://cors-anywhere.herokuapp.com/http://a.example/z.jpg?q=1",
         "http://a.example/z.jpg?q=1", "https://cors-anywhere.herokuapp.com/",
         "https://cors-anywhere.herokuapp.com/http://a.example/z.jpg?q=1"),
        ("https://thingproxy.freeboard.io/fetch/https://a.example/w.png",
         "https://a.example/w.png", "https://thingproxy.freeboard.io/fetch/",
         "https://thingproxy.freeboard.io/fetch/https://a.example/w.png"),
        ("https://cors.zfour.workers.dev/HTTP:/a.example/folded.jpg",  # "//" folded to "/"
         "http://a.example/folded.jpg", "https://cors.zfour.workers.dev/",
         "https://cors.zfour.workers.dev/http://a.example/folded.jpg"),
        # Percent-encoded twice by a scraper: decoded twice, and no further (the origin's own
        # escapes stay).
        ("https://cors.zfour.workers.dev/?http%253A%252F%252Fa.example%252Fa%252520b.jpg",
         "http://a.example/a%20b.jpg", "https://cors.zfour.workers.dev/?",
         "https://cors.zfour.workers.dev/?http://a.example/a%20b.jpg"),
        ("https://api.allorigins.win/raw?url=http%253A%252F%252Fa.example%252Fv.gif",
         "http://a.example/v.gif", "https://api.allorigins.win/raw?url=",
         "https://api.allorigins.win/raw?url=http%3A%2F%2Fa.example%2Fv.gif"),
        ("https://api.codetabs.com/v1/proxy?quest=http://a.example/c.jpg",
         "http://a.example/c.jpg", "https://api.codetabs.com/v1/proxy?quest=",
         "https://api.codetabs.com/v1/proxy?quest=http%3A%2F%2Fa.example%2Fc.jpg"),
    ],
)
def test_more_proxy_forms_unwrap_and_wrap_back(url: str, origin: str, prefix: str,
                                                again: str) -> None:
    assert unwrap(url, RULES) == (origin, prefix)
    assert wrap(prefix, origin, RULES) == again
    assert unwrap(again, RULES) == (origin, prefix)


@pytest.mark.parametrize("url", [
    "https://site.workers.dev/static/logo.png",  # a workers.dev site's own file
    "https://site.workers.dev/a/http/x.png",  # "http" without its colon is a path segment
    "https://cors-anywhere.herokuapp.com/",
])
def test_a_proxy_hosts_own_paths_are_not_proxy_uses(url: str) -> None:
    assert unwrap(url, RULES) == (url, None)


def test_self_nesting_is_bounded() -> None:
    url = "https://a.workers.dev/?" * 50 + "https://a.example/f.png"
    assert unwrap(url, RULES)[1] == "https://a.workers.dev/?"


@pytest.mark.parametrize(
    "url",
    [
        "https://cors.zfour.workers.dev/?" + ZAKER,
        "https://wsrv.nl/?url=https%3A%2F%2Fa.example%2Fb.png%3Fq%3D1%26r%3D2",
        "https://i0.wp.com/a.example/up/c.jpg",
        "https://i2.wp.com/a.example/up/c.jpg?ssl=1",
    ],
)
def test_wrap_inverts_unwrap(url: str) -> None:
    origin, prefix = unwrap(url, RULES)
    assert prefix is not None
    again = wrap(prefix, origin, RULES)
    assert unwrap(again, RULES) == (origin, prefix)


def test_wrap_forms() -> None:
    assert wrap("https://cors.zfour.workers.dev/?", ZAKER, RULES) == (
        "https://cors.zfour.workers.dev/?" + ZAKER)
    assert wrap("https://wsrv.nl/?url=", "https://a.example/b c.png", RULES) == (
        "https://wsrv.nl/?url=https%3A%2F%2Fa.example%2Fb%20c.png")


def test_wrap_unknown_prefix() -> None:
    custom = [ProxyRule(name="only", hosts=["p.example"], style="query")]
    assert wrap("https://other.example/fetch?u=", "https://a.example/x", custom) == (
        "https://other.example/fetch?u=https%3A%2F%2Fa.example%2Fx")
    with pytest.raises(ConfigError):
        wrap("https://other.example/fetch", "https://a.example/x", custom)


def test_rules_come_from_config() -> None:
    custom = [ProxyRule(name="mine", hosts=["img.proxy.example"], style="param", param="src")]
    assert unwrap("https://img.proxy.example/get?src=https%3A%2F%2Fa.example%2Fg.jpg", custom) == (
        "https://a.example/g.jpg", "https://img.proxy.example/get?src=")
    assert unwrap("https://cors.zfour.workers.dev/?" + ZAKER, custom)[1] is None
