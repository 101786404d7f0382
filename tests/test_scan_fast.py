"""The scanner's fast paths against their references, on generated input (differential).

- ``html.prefilter``, which tries only the tags that can yield something, against trying
  every tag;
- ``markup.elements`` (lxml's events placed as bs4 places them) against ``elements_bs4``
  (BeautifulSoup's own tree), on the prefiltered tags of markup built from hostile pieces;
- ``frontmatter.read_flat`` against YAML, on front matter built from flat and not-so-flat
  lines: whenever the flat reader answers, YAML reads the same mapping (types and order too).

The golden tests (test_scan_golden.py) hold the whole scan's output to today's, byte for byte.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.scan import frontmatter, html, markup
from tests.support.golden import PIECES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAG_PIECES = (*PIECES, "<VIDEO>", "</Picture>", "<a-end>", "</a-end>", "<p/>", "<br>",
              "<img src=x/>", "<svg:image href=y>", "<a href=1><a href=2>", "<html>", "<body>",
              "<head>", "<table>", "<td>", "<select>", "<option>", "<frameset>", "<!DOCTYPE x>",
              "<?xml version='1.0'?>", " data-a=//x.example/y ", "\u00e9", "\U0010fe99", "&#0;",
              "&#xd800;", "<img src=" + "a" * 300 + ">", "<video>" * 5, "URL(", "v.QQ.com",
              "Data-X=", "data-y = 'https://", "\u017f", "\u0130", "\u212a", "<Img", "<SOURCE",
              "</A>", "<abbr ", "<a:b ", "<img-x ", "<iframe2 ", "<b ", "</b>",
              "<meta property=og:image content=//x.example/m.jpg>", "<META ", "<link rel=",
              "image_src href=//x.example/l.jpg>", "<amp-img src=a.jpg>", "<amp-img-x ",
              "<embed src=//x.example/e.mp4>", "<object data=", "<metadata ", "<linked ")


# html._INTERESTING as it was written first (quadratic on "data-data-data-..."): the same
# strings must match.
INTERESTING_BEFORE = re.compile(
    r"""url\(|v\.qq\.com|data-[\w-]+\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
ATTR_PIECES = ("data-", "DATA-", "x", "-", "_", "\u00e9", " ", "\t", "=", "'", '"', "//", "http:",
               "HTTPS:", "https", ":", "url(", "v.qq.com", ">", "<", "\u017f", "/")


@FUZZ
@given(st.lists(st.sampled_from(ATTR_PIECES), max_size=40))
def test_interesting_attributes_as_before(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert bool(html._INTERESTING.search(text)) == bool(INTERESTING_BEFORE.search(text))


@FUZZ
@given(st.lists(st.sampled_from(TAG_PIECES), min_size=1, max_size=60))
def test_prefilter_tries_every_tag_that_matters(pieces: list[str]) -> None:
    body = "".join(pieces)
    assert html.prefilter(body) == html.prefilter(body, every=True)


@FUZZ
@given(st.lists(st.sampled_from(TAG_PIECES), min_size=1, max_size=60))
def test_elements_match_beautifulsoup(pieces: list[str]) -> None:
    snippet = html.prefilter("".join(pieces))
    if snippet:
        assert markup.elements(snippet) == markup.elements_bs4(snippet)


def test_deep_containers_match_beautifulsoup() -> None:
    snippet = html.prefilter("<video>" * 3000 + "<source src=https://a.example/v.mp4>"
                             + "</video>" * 10 + "<picture><source srcset=x.jpg>")
    assert markup.elements(snippet) == markup.elements_bs4(snippet)


KEYS = ("title", "headimg", "images", "date", "y", "_k", "a1", "Title") * 5 + (
    "true", "null", "on", "No", "key-dash", "k.dot", "\u00e9")
PLAIN = ("'https://a.example/x.jpg'", "https://a.example/y.jpg", "plain text", "it's", "a#b",
         "Wed, 09 Feb 2022 06:53:38 GMT", "\u00e9t\u00e9 \u4e2d\u6587", "'q'", "x", "''")
TRICKY = ("'it''s'", "'a # b'", "a: b", "a #b", "x:", "~", "null", "true", "False", "yes", "off",
          "12", "1.5", "0x1f", "1_000", "2021-03-04", "2021-03-04 05:06:07", ".inf", ".net", "=",
          "<<", "- x", "[a, b]", "{a: 1}", "&anchor x", "*alias", "!tag x", "|", ">", "%x", "@x",
          "`x`", '"dq"', "'", "'a'b'", "a\tb", "a\x85b", "a\u2028b", "a\ufeffb", "\U0010fe99x",
          "a [b] {c}, d", "a\\b", "?x", ":x", "-x", "", " ", "  'q'  ", "x  ", "a\x7fb")
VALUES = PLAIN * 20 + TRICKY
GAPS = (" ",) * 8 + ("  ", "")
INDENTS = ("", " ", " ", "  ", "\t")
ODD = ("---", "...", "  more", "key:value", "- ", "k : v", "k:\tv", " x", "-", " ", "# c",
       "  - z", "- y", "title: a\n  b")


@st.composite
def front_lines(draw: st.DrawFn) -> str:
    """Front matter of flat blocks (pairs, keys with items), now and then an odd line."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.integers(0, 2)):
            lines.append(f"{key}:{draw(st.sampled_from(GAPS))}{draw(st.sampled_from(VALUES))}")
        else:
            lines.append(key + draw(st.sampled_from((":", ":  "))))
            indent = draw(st.sampled_from(INDENTS))
            for _ in range(draw(st.integers(0, 3))):
                lines.append(f"{indent}-{draw(st.sampled_from(GAPS))}"
                             f"{draw(st.sampled_from(VALUES))}")
        if draw(st.integers(0, 5)) == 0:
            lines.append("")
    if lines and draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(ODD)))
    return "\n".join(lines) + draw(st.sampled_from(("", "\n")))


@FUZZ
@given(front_lines())
def test_flat_front_matter_reads_as_yaml(front: str) -> None:
    flat = frontmatter.read_flat(front)
    if flat is None:
        return
    data = yaml.load(front, Loader=frontmatter._Loader)
    assert repr(flat) == repr(data if data is not None else {})


def test_flat_front_matter_of_the_posts() -> None:
    front = ("title: 'Mesa的_TURNIP_Vulkan开源驱动'\ncategories: \n - 新媒体\n - cnBeta\n"
             "headimg: 'https://a.example/h.webp'\nauthor: cnBeta\ncomments: false\n"
             "date: Wed, 09 Feb 2022 06:53:38 GMT\n")
    assert frontmatter.read_flat(front) == {
        "title": "Mesa的_TURNIP_Vulkan开源驱动", "categories": ["新媒体", "cnBeta"],
        "headimg": "https://a.example/h.webp", "author": "cnBeta", "comments": False,
        "date": "Wed, 09 Feb 2022 06:53:38 GMT"}
    # A timestamp is made by YAML's own constructor (two posts date themselves so); a day no
    # calendar has is left to YAML, which says why.
    assert frontmatter.read_flat("date: 2021-06-10 03:24:22\nday: 2021-03-04\n") == {
        "date": datetime(2021, 6, 10, 3, 24, 22), "day": date(2021, 3, 4)}
    assert frontmatter.read_flat("date: 2021-13-45\n") is None
    assert frontmatter.read_flat("n: 12\n") is None  # a number: YAML reads it
    assert frontmatter.read_flat("a:\n - x\n  - y\n") is None  # a continuation line


def test_unsafe_characters_are_those_outside_what_yaml_takes() -> None:
    """``_UNSAFE`` (written as the ranges it matches, cheap to compile) matches exactly the
    characters outside the ranges flat front matter may hold, every code point checked."""
    outside = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
                         "\U00010000-\U0010ffff]")
    text = "".join(map(chr, range(0x110000)))
    assert [m.start() for m in frontmatter._UNSAFE.finditer(text)] == \
        [m.start() for m in outside.finditer(text)]
