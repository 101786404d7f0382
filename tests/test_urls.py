"""URL normalisation, kinds and the v.qq.com canonical form (archiver.urls)."""

from __future__ import annotations

import pytest

from archiver import urls
from archiver.scan.srcset import candidates
from archiver.settings import ScanSettings

SETTINGS = ScanSettings()


@pytest.mark.parametrize(
    ("raw", "origin", "proxy"),
    [
        ("  https://A.Example/x.jpg#frag \n", "https://a.example/x.jpg", None),
        ("https://a.example/x.jpg?a=1&amp;b=2", "https://a.example/x.jpg?a=1&b=2", None),
        ("//a.example/x.jpg", "https://a.example/x.jpg", None),
        ("https://a.example:443/x.jpg", "https://a.example/x.jpg", None),
        ("http://a.example:8080/x.jpg", "http://a.example:8080/x.jpg", None),
        ("https://a.example/a b/图.jpg", "https://a.example/a%20b/%E5%9B%BE.jpg", None),
        ("https://a.example/a%20b.jpg", "https://a.example/a%20b.jpg", None),
        ("https://a.example/x\n.jpg", "https://a.example/x.jpg", None),
        ("https://cors.zfour.workers.dev/?http://zkres2.myzaker.com/1/a_1024.jpg#x",
         "http://zkres2.myzaker.com/1/a_1024.jpg", "https://cors.zfour.workers.dev/?"),
        ("https://cors.zfour.workers.dev/?//a.example/y.png", "http://a.example/y.png",
         "https://cors.zfour.workers.dev/?"),
        ("https://wsrv.nl/?url=a.example/y.png&amp;w=3", "http://a.example/y.png",
         "https://wsrv.nl/?url="),
        # Dot segments resolved as a browser resolves them before asking (RFC 3986 5.2.4), so
        # two spellings of one file are one asset; a name that only starts with a dot stays.
        ("https://a.example/x/../y/./z.jpg", "https://a.example/y/z.jpg", None),
        ("https://a.example/../../z.jpg?q=/../", "https://a.example/z.jpg?q=/../", None),
        ("https://a.example/.well/..z.jpg", "https://a.example/.well/..z.jpg", None),
        # An internationalised host name in its ASCII form, the one DNS is asked for.
        ("http://例子.测试/图.jpg", "http://xn--fsqu00a.xn--0zwm56d/%E5%9B%BE.jpg", None),
        ("http://XN--FSQU00A.xn--0zwm56d/a.jpg", "http://xn--fsqu00a.xn--0zwm56d/a.jpg", None),
    ],
)
def test_normalise(raw: str, origin: str, proxy: str | None) -> None:
    assert urls.normalise(raw, SETTINGS) == urls.Normal(origin, proxy)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("data:image/png;base64,AAAA", urls.DATA_URI),
        ("DATA:image/gif,xyz", urls.DATA_URI),
        ("javascript:void(0)", urls.JAVASCRIPT),
        ("about:blank", urls.UNSUPPORTED_SCHEME),
        ("blob:https://a.example/1", urls.UNSUPPORTED_SCHEME),
        ("ftp://a.example/x.jpg", urls.UNSUPPORTED_SCHEME),
        ("images/x.jpg", urls.RELATIVE),
        ("/x.jpg", urls.RELATIVE),
        ("https://", urls.INVALID),
        ("http://[::1/x.jpg", urls.INVALID),
    ],
)
def test_rejected(raw: str, reason: str) -> None:
    assert urls.normalise(raw, SETTINGS) == urls.Rejected(reason)


def test_empty_is_nothing() -> None:
    assert urls.normalise("   ", SETTINGS) is None
    assert urls.normalise("#", SETTINGS) is None


def test_base_url_and_scheme_settings() -> None:
    settings = ScanSettings(base_url="https://blog.example/posts/", default_scheme="http")
    assert urls.normalise("img/x.jpg", settings) == urls.Normal(
        "https://blog.example/posts/img/x.jpg", None)
    assert urls.normalise("//a.example/x.jpg", settings) == urls.Normal(
        "http://a.example/x.jpg", None)


def test_entities_left_alone_when_parser_decoded() -> None:
    assert urls.normalise("https://a.example/?q=&amp;", SETTINGS, entities=False) == (
        urls.Normal("https://a.example/?q=&amp;", None))


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("//v.qq.com/iframe/player.html?vid=https://v.qq.com/x/page/k3318ooj0ej.html&auto=0",
         "https://v.qq.com/x/page/k3318ooj0ej.html"),
        ("https://v.qq.com/iframe/player.html?vid=k3318ooj0ej&tiny=0&auto=0",
         "https://v.qq.com/x/page/k3318ooj0ej.html"),
        ("https://v.qq.com/txp/iframe/player.html?vid=y0000abcd03",
         "https://v.qq.com/x/page/y0000abcd03.html"),
        ("http://v.qq.com/x/page/k3318ooj0ej.html?ptag=1#x",
         "https://v.qq.com/x/page/k3318ooj0ej.html"),
        ("https://m.v.qq.com/x/page/k3318ooj0ej.html", "https://v.qq.com/x/page/k3318ooj0ej.html"),
        ("https://m.v.qq.com/play.html?vid=k3318ooj0ej", "https://v.qq.com/x/page/k3318ooj0ej.html"),
        ("https://v.qq.com/page/k/3/j/k3318ooj0ej.html", "https://v.qq.com/x/page/k3318ooj0ej.html"),
        ("https://v.qq.com/x/cover/mzc00200abcdefg/x0000abcd02.html?x=1",
         "https://v.qq.com/x/cover/mzc00200abcdefg/x0000abcd02.html"),
        ("https://v.qq.com/x/cover/mzc00200abcdefg.html",
         "https://v.qq.com/x/cover/mzc00200abcdefg.html"),
    ],
)
def test_canonical_video(url: str, canonical: str) -> None:
    assert urls.canonical_video(url) == canonical


@pytest.mark.parametrize(
    "url",
    [
        "https://v.qq.com/",
        "https://v.qq.com/iframe/player.html?vid=",
        "https://v.qq.com/iframe/player.html?vid=https://v.qq.com/",
        "https://tv.sohu.com/s/sohuplayer/iplay.html?bid=1",
        "https://qq.com.evil.example/x/page/k3318ooj0ej.html",
        "https://www.qq.com/x/page/abc.html",
    ],
)
def test_not_a_tencent_video(url: str) -> None:
    assert urls.canonical_video(url) is None


@pytest.mark.parametrize(
    ("origin", "hint", "kind"),
    [
        ("https://a.example/x.jpg", None, "image"),
        ("https://a.example/x.GIF", None, "gif"),
        ("http://img.jandan.net/news/x.gif!custom", None, "gif"),
        ("https://a.example/raw", "gif", "gif"),
        ("https://a.example/x.mp4", None, "video"),
        ("https://a.example/x.webm", None, "video"),
        ("https://a.example/x.mov", None, "video"),
        ("https://a.example/live.m3u8?token=1", None, "video"),
        ("https://a.example/stream", "video", "video"),
        ("https://v.qq.com/x/page/k3318ooj0ej.html", None, "video"),
        ("https://a.example/no-extension", None, "image"),
    ],
)
def test_kind_of(origin: str, hint: str | None, kind: str) -> None:
    assert urls.kind_of(origin, hint) == kind


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.jpg 1x, b.jpg 2x", ["a.jpg", "b.jpg"]),
        ("a.jpg 480w,b.jpg 960w", ["a.jpg", "b.jpg"]),
        ("a.jpg", ["a.jpg"]),
        ("https://a.example/x,y.jpg 1x, c.jpg 2x", ["https://a.example/x,y.jpg", "c.jpg"]),
        ("a.jpg, b.jpg", ["a.jpg", "b.jpg"]),
        (" , ,", []),
        ("a.jpg (bad) 1x), b.jpg", ["a.jpg", "b.jpg"]),
    ],
)
def test_srcset(srcset: str, expected: list[str]) -> None:
    assert [url for url, _ in candidates(srcset)] == expected
