"""What the scanner finds in HTML, front matter and markdown, on fixtures in the corpus format."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.models import ArticleScan, Reference
from archiver.scan import scan_text
from archiver.settings import ScanSettings

ARTICLES = Path(__file__).parent / "fixtures" / "articles"
SETTINGS = ScanSettings()
PROXY = "https://cors.zfour.workers.dev/?"


def scan_fixture(name: str) -> ArticleScan:
    path = ARTICLES / name
    return scan_text(path.read_text(encoding="utf-8"), path.stem, SETTINGS, str(path))


def by_origin(scan: ArticleScan) -> dict[str, Reference]:
    refs = {ref.origin: ref for ref in scan.references}
    assert len(refs) == len(scan.references), "an origin is reported twice"
    return refs


def test_zaker_gif_still_pair_and_tencent_video() -> None:
    scan = scan_fixture("zaker-gif.md")
    refs = by_origin(scan)
    base = "http://zkres1.myzaker.com/202301/aaaaaaaaaaaaaaaaaaaaaaa1"
    gif = refs[base + "_raw.gif"]
    assert gif.kind == "gif"
    assert gif.where == ("img[data-gif-url]",)
    assert gif.alternates == (base + "_1024.jpg",)
    # The GIF URL is written unproxied; the stills beside it went through the proxy.
    assert gif.proxy == PROXY
    # The still stands alone as the front-matter image: a separate image reference there.
    still = refs[base + "_1024.jpg"]
    assert still.kind == "image"
    assert still.where == ("front_matter.headimg", "front_matter.thumbnail")
    assert still.url == PROXY + base + "_1024.jpg"
    plain = refs["http://zkres2.myzaker.com/202301/aaaaaaaaaaaaaaaaaaaaaaa2_1024.jpg"]
    assert plain.where == ("img[data-original]", "img[src]")
    assert plain.proxy == PROXY
    video = refs["https://v.qq.com/x/page/t0000abcd01.html"]
    assert video.kind == "video"
    assert video.where == ("div[id]", "iframe[src]")
    assert scan.title == "A ZAKER post with GIFs and a Tencent video"
    assert len(refs) == 4 and scan.skipped == () and scan.warnings == ()


def test_every_html_form() -> None:
    scan = scan_fixture("lazy-html.html")
    refs = by_origin(scan)
    expect = {
        "https://cdn.example.com/cover.webp": ("image", ("front_matter.cover",)),
        "https://img.example.com/a.png": ("image", ("front_matter.images[0]",)),
        "https://blog.example.org/wp-content/uploads/b.jpg": ("image", ("front_matter.images[1]",)),
        "https://img.example.com/lazy.jpg": ("image", ("img[data-src]",)),
        "https://img.example.com/lazy2.jpg": ("image", ("img[data-lazy-src]",)),
        "https://img.example.com/zhihu.jpg": ("image", ("img[data-actualsrc]",)),
        "https://img.example.com/d-960.jpg": ("image", ("img[data-srcset]",)),
        "https://img.example.com/p.avif": ("image", ("source[srcset]",)),
        "https://img.example.com/p@2x.webp": ("image", ("source[srcset]",)),
        "https://img.example.com/p.jpg": ("image", ("img[src]",)),
        "https://media.example.com/clip.mp4": ("video", ("video[src]",)),
        "https://media.example.com/poster.jpg": ("image", ("video[poster]",)),
        "https://media.example.com/clip.webm": ("video", ("source[src]",)),
        "https://media.example.com/live.m3u8": ("video", ("source[src]",)),
        "https://media.example.com/talk.mp3": ("video", ("audio[src]",)),
        "https://img.example.com/full.png": ("image", ("a[href]",)),
        "https://v.qq.com/x/cover/mzc00200abcdefg/x0000abcd02.html": ("video", ("a[href]",)),
        "https://v.qq.com/x/page/y0000abcd03.html": ("video", ("iframe[src]",)),
        "https://img.example.com/bg.jpg": ("image", ("style:url()",)),
        "https://img.example.com/bg2.png": ("image", ("style:url()",)),
        "https://v.qq.com/x/page/z0000abcd04.html": ("video", ("div[data-vid]",)),
        "http://img.example.com/avatar.jpeg": ("image", ("button[data-avatar]",)),
        "https://img.example.com/q.jpg?a=1&b=2": ("image", ("img[src]",)),
        "https://img.example.com/spaced.jpg": ("image", ("img[src]",)),
    }
    assert {o: (r.kind, r.where) for o, r in refs.items()} == expect
    # The thumbnail inside the link to the full image is its alternate, not a reference.
    assert refs["https://img.example.com/full.png"].alternates == (
        "https://img.example.com/thumb.png",)
    # A srcset's largest candidate is the reference, the smaller ones its alternates (widths
    # before densities when an <img> mixes them).
    assert refs["https://img.example.com/d-960.jpg"].alternates == (
        "https://img.example.com/d-480.jpg", "https://img.example.com/s-2x.jpg",
        "https://img.example.com/s-1x.jpg")
    assert refs["https://img.example.com/p@2x.webp"].alternates == (
        "https://img.example.com/p.webp",)
    assert refs["https://img.example.com/a.png"].proxy == "https://wsrv.nl/?url="
    assert refs["https://blog.example.org/wp-content/uploads/b.jpg"].proxy == "https://i1.wp.com/"
    assert refs["https://cdn.example.com/cover.webp"].url == "//cdn.example.com/cover.webp"
    assert refs["https://img.example.com/q.jpg?a=1&b=2"].url == (
        "https://img.example.com/q.jpg?a=1&b=2#frag")
    skipped = sorted((s.where, s.reason) for s in scan.skipped)
    assert skipped == sorted([
        ("front_matter.photos[0]", "data-uri"),
        ("front_matter.photos[1]", "relative"),
        ("img[src]", "data-uri"),
        ("iframe[src]", "unsupported-video"),
        ("img[src]", "javascript"),
        ("img[src]", "relative"),
        ("img[src]", "unsupported-scheme"),
    ])
    # Pages, the WordPress embed, comments and scripts are not references.
    origins = " ".join(refs)
    for absent in ("article.html", "embed", "commented", "scripted"):
        assert absent not in origins


def test_markdown_images() -> None:
    scan = scan_fixture("markdown.md")
    refs = by_origin(scan)
    assert {o: (r.kind, r.where) for o, r in refs.items()} == {
        "https://img.example.com/md-thumb.jpg": ("image", ("front_matter.thumbnail",)),
        "https://img.example.com/md1.png": ("image", ("markdown:image",)),
        "https://img.example.com/md%202.png": ("image", ("markdown:image",)),
        "https://img.example.com/md-full.jpg": ("image", ("markdown:link",)),
        "https://img.example.com/ref1.gif": ("gif", ("markdown:refdef",)),
        "https://img.example.com/ref2.jpg": ("image", ("markdown:refdef",)),
        "https://img.example.com/ref3.webp": ("image", ("markdown:refdef",)),
    }
    # The linked thumbnail is the full image's alternate, not a reference of its own.
    assert refs["https://img.example.com/md-full.jpg"].alternates == (
        "https://img.example.com/md-thumb-small.jpg",)
    # Seen unproxied first and proxied later: one reference that keeps the proxy prefix.
    md1 = refs["https://img.example.com/md1.png"]
    assert md1.proxy == PROXY and md1.url == "https://img.example.com/md1.png"
    assert refs["https://img.example.com/md-thumb.jpg"].proxy == PROXY


def test_hexo_tags_and_autolinks() -> None:
    """Hexo's ``{% img %}`` and ``{% iframe %}`` tags and CommonMark autolinks, read as Hexo and
    CommonMark read them; the same in fenced code are not references."""
    scan = scan_fixture("../hexo/hexo-tags.md")
    refs = by_origin(scan)
    assert {o: (r.kind, r.where) for o, r in refs.items()} == {
        "http://img.example.com/hexo-left.jpg": ("image", ("hexo:img",)),
        "https://img.example.com/hexo-rel.png": ("image", ("hexo:img",)),
        "http://img.example.com/hexo-anim.gif": ("gif", ("hexo:img",)),
        "https://v.qq.com/x/page/h0000hexo01.html": ("video", ("hexo:iframe",)),
        "https://v.qq.com/x/page/h0000auto02.html": ("video", ("markdown:autolink",)),
        "http://img.example.com/auto.JPG": ("image", ("markdown:autolink",)),
    }
    left = refs["http://img.example.com/hexo-left.jpg"]
    assert left.proxy == PROXY and left.url == PROXY + "http://img.example.com/hexo-left.jpg"
    assert sorted((s.where, s.value, s.reason) for s in scan.skipped) == [
        ("hexo:iframe", "https://www.youtube.com/embed/notours", "unsupported-video"),
        ("hexo:img", "/images/local.png", "relative"),
    ]


@pytest.mark.parametrize("body", [
    "{% img " + " " * 200_000,  # no end of the tag: each start stops at the line's end
    "{% img " * 30_000,  # many starts on one line: each stops at the next "{"
    "{% iframe " + "%" * 200_000,
    "<http://" * 30_000,
])
def test_hostile_tags_and_autolinks_are_linear(body: str) -> None:
    """Quadratic backtracking here would run for minutes (pytest's timeout fails it)."""
    assert scan_text(f"---\ntitle: x\n---\n{body}\n", "x", SETTINGS).references == ()


def test_img_with_several_attributes_is_one_reference_per_origin() -> None:
    text = ('<img src="https://cors.zfour.workers.dev/?http://a.example/1.jpg" '
            'data-original="http://a.example/1.jpg" data-src="http://a.example/1.jpg">')
    (ref,) = scan_text(text, "x", SETTINGS).references
    assert ref.where == ("img[data-original]", "img[data-src]", "img[src]")
    assert ref.url == "http://a.example/1.jpg" and ref.proxy == PROXY


def test_gif_stills_are_not_separate_references() -> None:
    text = ('<img data-gif-url="https://cors.zfour.workers.dev/?http://a.example/x_raw.gif" '
            'data-original="http://a.example/x_1024.jpg" src="http://a.example/x_640.jpg" '
            'srcset="http://a.example/x_2048.jpg 2x">')
    (ref,) = scan_text(text, "x", SETTINGS).references
    assert ref.kind == "gif" and ref.origin == "http://a.example/x_raw.gif"
    # The stills largest first: the srcset's 2x, then data-original and src (1x each).
    assert ref.alternates == ("http://a.example/x_2048.jpg", "http://a.example/x_1024.jpg",
                              "http://a.example/x_640.jpg")


def test_gif_url_that_is_not_a_url_leaves_the_stills_alone() -> None:
    text = '<img data-gif-url="none" src="http://a.example/x.jpg">'
    scan = scan_text(text, "x", SETTINGS)
    assert [r.origin for r in scan.references] == ["http://a.example/x.jpg"]
    assert [(s.where, s.reason) for s in scan.skipped] == [("img[data-gif-url]", "relative")]


@pytest.mark.parametrize(
    "html",
    [
        '<p><img src="https://a.example/x.jpg" alt="unclosed',
        '<div><img src=https://a.example/x.jpg><p>never closed',
        '<img alt="a > b" src="https://a.example/x.jpg">',
        "<IMG SRC='https://a.example/x.jpg'>",
        '<video><source src="https://a.example/x.jpg"></video></video></div></div>',
        '<img src="https://a.example/x.jpg"<p>',
        '<p><img src="https://a.example/x.jpg"',
    ],
)
def test_broken_html_still_scanned(html: str) -> None:
    """The broken tag's own reference is found, and so is the tag after it."""
    scan = scan_text(html + '<img src="https://a.example/after.png">', "x", SETTINGS)
    assert [r.origin for r in scan.references] == ["https://a.example/x.jpg",
                                                    "https://a.example/after.png"]
    alone = scan_text(html, "x", SETTINGS)
    assert [r.origin for r in alone.references] == ["https://a.example/x.jpg"]


def test_source_kind_depends_on_container() -> None:
    text = ('<picture><source srcset="https://a.example/p.jpg"></picture>'
            '<video><source src="https://a.example/v"></video>'
            '<audio><source src="https://a.example/a"></audio>')
    kinds = {r.origin: r.kind for r in scan_text(text, "x", SETTINGS).references}
    assert kinds == {"https://a.example/p.jpg": "image", "https://a.example/v": "video",
                     "https://a.example/a": "video"}


def test_configured_image_keys() -> None:
    """A configured key's URL is an image whatever it looks like; under any other key only an
    absolute URL naming a media file (or a v.qq.com video) is a reference, as a link is."""
    text = ("---\nhero: https://a.example/h\nheadimg: https://a.example/i\n"
            "index_img: https://a.example/i.jpg\nvideo: https://v.qq.com/x/page/a0000fm0001.html\n"
            "gallery: [https://a.example/g.png, {src: https://a.example/g2.gif}, https://a.example/p]\n"
            "link: https://a.example/page.html\nrel: images/r.jpg\ntitle: https://a.example/t.jpg\n"
            "---\n")
    settings = ScanSettings(image_keys=["hero"])
    scan = scan_text(text, "x", settings)
    assert [(r.where, r.kind) for r in scan.references] == [
        (("front_matter.hero",), "image"),
        (("front_matter.index_img",), "image"),
        (("front_matter.video",), "video"),
        (("front_matter.gallery[0]",), "image"),
        (("front_matter.gallery[1]",), "gif"),
    ]
    assert scan.skipped == ()


def test_front_matter_lists_and_mappings() -> None:
    text = ("---\nphotos:\n  - https://a.example/1.jpg\n  - {url: https://a.example/2.jpg}\n"
            "  - 3\nbanner: {src: https://a.example/3.jpg}\nimage: null\n---\n")
    refs = scan_text(text, "x", SETTINGS).references
    assert [(r.where, r.origin) for r in refs] == [
        (("front_matter.banner",), "https://a.example/3.jpg"),
        (("front_matter.photos[0]",), "https://a.example/1.jpg"),
        (("front_matter.photos[1]",), "https://a.example/2.jpg"),
    ]


@pytest.mark.parametrize(("text", "title", "found"), [
    # Hexo reads front matter without its opening fence: the lines before the first fence.
    ("title: No fence\nheadimg: https://a.example/nf.jpg\ntags:\n- a\n---\n"
     '<img src="https://a.example/b.jpg">',
     "No fence", ["https://a.example/nf.jpg", "https://a.example/b.jpg"]),
    # Hexo's JSON front matter: members without braces (its own form), or an object; with or
    # without the opening ";;;".
    (';;;\n"title": "JSON",\n"headimg": "https://a.example/j.jpg"\n;;;\nbody',
     "JSON", ["https://a.example/j.jpg"]),
    (';;;\n{"title": "JSON object", "photos": ["https://a.example/j2.jpg"]}\n;;;\n',
     "JSON object", ["https://a.example/j2.jpg"]),
    ('"title": "JSON, no fence",\n"cover": "https://a.example/j3.jpg"\n;;;\nbody',
     "JSON, no fence", ["https://a.example/j3.jpg"]),
    # TOML between "+++" (archives moved from Hugo).
    ('+++\ntitle = "TOML"\nheadimg = "https://a.example/t.jpg"\ndate = 2021-01-02\n+++\nbody',
     "TOML", ["https://a.example/t.jpg"]),
    # A post that opens with text and a rule has no front matter, and keeps its text; one
    # whose first line reads like a key keeps its references too.
    ("Some intro text\n---\n![a](https://a.example/intro.jpg)", None,
     ["https://a.example/intro.jpg"]),
    ('Note: see <img src="https://a.example/note.jpg"> first\n---\nbody', None,
     ["https://a.example/note.jpg"]),
    ("https://a.example/u.jpg\n---\n", None, []),
])
def test_front_matter_forms(text: str, title: str | None, found: list[str]) -> None:
    scan = scan_text(text, "x", SETTINGS)
    assert scan.title == title and scan.warnings == ()
    assert [r.origin for r in scan.references] == found


def test_a_pages_head_amp_and_embedded_files() -> None:
    """A scraped page saved whole names its image in its head (Open Graph, Twitter cards,
    schema.org, ``image_src``); AMP pages write ``<amp-img>``; ``<embed>``/``<object>`` hold a
    media file (by its extension: a Flash player is not one)."""
    text = (
        '<html><head><meta property="og:image" content="https://a.example/og">'
        '<meta name="twitter:image" content="https://a.example/tw.jpg">'
        '<meta itemprop="thumbnailUrl" content="https://a.example/thumb.png">'
        '<meta property="og:video" content="https://v.qq.com/x/page/m0000meta01.html">'
        '<meta property="og:video:url" content="https://a.example/player.swf">'
        '<meta property="og:title" content="https://a.example/title.jpg">'
        '<link rel="stylesheet" href="https://a.example/s.css">'
        '<link rel="image_src" href="https://a.example/src.jpg"></head><body>'
        '<amp-img src="https://a.example/amp.jpg" width="1" height="1"></amp-img>'
        '<amp-anim src="https://a.example/amp.gif"></amp-anim>'
        '<amp-video src="https://a.example/amp.mp4" poster="https://a.example/p.jpg"></amp-video>'
        '<embed src="https://a.example/e.mp4"><embed src="https://a.example/flash.swf">'
        '<object data="https://a.example/o.mp3"></object></body></html>')
    refs = {r.origin: (r.kind, r.where) for r in scan_text(text, "x", SETTINGS).references}
    assert refs == {
        "https://a.example/og": ("image", ("meta[og:image]",)),
        "https://a.example/tw.jpg": ("image", ("meta[twitter:image]",)),
        "https://a.example/thumb.png": ("image", ("meta[thumbnailurl]",)),
        "https://v.qq.com/x/page/m0000meta01.html": ("video", ("meta[og:video]",)),
        "https://a.example/src.jpg": ("image", ("link[image_src]",)),
        "https://a.example/amp.jpg": ("image", ("amp-img[src]",)),
        "https://a.example/amp.gif": ("gif", ("amp-anim[src]",)),
        "https://a.example/amp.mp4": ("video", ("amp-video[src]",)),
        "https://a.example/p.jpg": ("image", ("amp-video[poster]",)),
        "https://a.example/e.mp4": ("video", ("embed[src]",)),
        "https://a.example/o.mp3": ("video", ("object[data]",)),
    }


@pytest.mark.parametrize("attr", ["data-echo", "data-normal", "data-ks-lazyload",
                                  "data-lazyload", "data-lazy", "real_src", "original"])
def test_lazy_loaders_sources_are_the_image_whatever_the_url(attr: str) -> None:
    """A lazy loader's attribute holds the image even when its URL names no file type (a
    placeholder ``src`` beside it); other ``data-*`` URLs count only by their extension."""
    text = (f'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" '
            f'{attr}="https://a.example/p?id=1" data-note="https://a.example/page?id=2">')
    scan = scan_text(text, "x", SETTINGS)
    assert [(r.origin, r.where) for r in scan.references] == [
        ("https://a.example/p?id=1", (f"img[{attr}]",))]


def test_a_saved_pages_base_href_resolves_its_relative_urls() -> None:
    page = ('<html><head><base href="https://site.example/news/2022/"></head><body>'
            '<img src="a.jpg"><img src="/img/b.png"><img src="../c.gif"></body></html>')
    assert [r.origin for r in scan_text(page, "x", SETTINGS).references] == [
        "https://site.example/news/2022/a.jpg", "https://site.example/img/b.png",
        "https://site.example/news/c.gif"]
    # Scheme-relative, and relative to the configured base_url.
    scheme_relative = scan_text("<BASE HREF=//cdn.example/x/><img src=d.jpg>", "x", SETTINGS)
    assert [r.origin for r in scheme_relative.references] == ["https://cdn.example/x/d.jpg"]
    configured = ScanSettings(base_url="https://blog.example/posts/")
    relative = scan_text('<base href="../media/"><img src="e.jpg">', "x", configured)
    assert [r.origin for r in relative.references] == ["https://blog.example/media/e.jpg"]
    # No href, or one that is not http(s): relative URLs stay skipped as relative.
    for text in ("<base target=_blank><img src=f.jpg>",
                 '<base href="javascript:x"><img src=f.jpg>'):
        assert [s.reason for s in scan_text(text, "x", SETTINGS).skipped] == ["relative"]
