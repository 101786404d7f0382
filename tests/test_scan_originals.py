"""Originals behind thumbnails: a link around a thumbnail, a link wrapper page, an <img>
attribute holding the original; the original is the reference, the thumbnail its alternate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.fetch.sniff import recordable_kinds, recorded_kind
from archiver.models import Reference
from archiver.scan import scan_paths, scan_text
from archiver.settings import (
    DEFAULT_LINKS,
    LinkExample,
    LinkRule,
    ScanSettings,
    Settings,
    load_settings,
)
from archiver.urls import check_links, unwrap_link

SETTINGS = ScanSettings()
PROXY = "https://cors.zfour.workers.dev/?"
FIXTURE = Path(__file__).parent / "fixtures" / "originals" / "jianshu-3001.md"


def refs(html: str, settings: ScanSettings = SETTINGS) -> dict[str, Reference]:
    found = {r.origin: r for r in scan_text(html, "x", settings).references}
    return found


def test_a_thumbnail_inside_a_link_to_its_original_is_the_originals_alternate() -> None:
    found = refs('<p><a href="https://cdn.example.com/a/148.jpg" target="_blank">'
                 '<img src="https://cdn.example.com/thumb/a/148.jpg" alt=""></a></p>')
    (ref,) = found.values()
    assert ref.origin == "https://cdn.example.com/a/148.jpg" and ref.kind == "image"
    assert ref.where == ("a[href]",)
    assert ref.alternates == ("https://cdn.example.com/thumb/a/148.jpg",)


def test_a_link_and_its_image_on_one_origin_stay_one_reference_with_the_images_proxy() -> None:
    # Dockone: the link unproxied, the image through the CORS proxy.
    (ref,) = refs('<a href="http://dockone.io/u/1.gif" rel="lightbox">'
                  f'<img src="{PROXY}http://dockone.io/u/1.gif" title="1.gif"></a>').values()
    assert ref.where == ("a[href]", "img[src]") and ref.kind == "gif"
    assert ref.proxy == PROXY and ref.alternates == ()


@pytest.mark.parametrize("html", [
    # A link to a page, a video, a second image inside, no closing tag: the image stands alone.
    '<a href="https://news.example.com/2022/148.html"><img src="https://c.example/t.jpg"></a>',
    '<a href="https://v.qq.com/x/page/t0000abcd01.html"><img src="https://c.example/t.jpg"></a>',
    '<a href="https://c.example/big.jpg"><img src="https://c.example/t.jpg">'
    '<img src="https://c.example/u.jpg"></a>',
    '<a href="https://c.example/big.jpg"><img src="https://c.example/t.jpg">',
])
def test_a_link_that_is_not_a_single_images_original_leaves_the_image_alone(html: str) -> None:
    assert "https://c.example/t.jpg" in refs(html)


def test_a_showimage_wrapper_carries_the_original() -> None:
    link = "https://news.example.com/showimage/2022/0515/148.shtml?https://cdn.example.com/148.jpg"
    (ref,) = refs(f'<a href="{link}"><img src="https://cdn.example.com/148_S.jpg"></a>').values()
    assert ref.origin == "https://cdn.example.com/148.jpg" and ref.url == link
    assert ref.alternates == ("https://cdn.example.com/148_S.jpg",)


def test_a_redirector_to_an_image_is_a_reference_and_to_a_page_is_not() -> None:
    go = "https://www.oschina.net/action/GoToLink?url="
    found = refs(f'<a href="{go}https%3A%2F%2Fstatic.oschina.net%2Fa%2F1.png">图</a>'
                 f'<a href="{go}https%3A%2F%2Fgleam.run%2Fnews%2F">gleam</a>')
    assert list(found) == ["https://static.oschina.net/a/1.png"]


def test_share_links_are_not_references() -> None:
    share = ("http://service.weibo.com/share/share.php?url=http%3A%2F%2Fn.example%2F1.shtml"
             "&amp;pic=http%3A%2F%2Fcdn.example.com%2F148.jpg")
    found = refs(f'<a href="{share}"><img src="https://cdn.example.com/weibo.png"></a>'
                 '<a href="https://n.example/share?pic=https%3A%2F%2Fcdn.example.com%2F1.jpg">'
                 'share</a>')
    assert list(found) == ["https://cdn.example.com/weibo.png"]  # the button's own icon
    assert found["https://cdn.example.com/weibo.png"].alternates == ()


def test_an_extensionless_data_original_src_is_the_reference() -> None:
    # jianshu: the original has no extension; src is a resized, proxied copy of it.
    html = ('<img data-original-src="//upload-images.jianshu.io/upload_images/2300-9a8b" '
            'data-original-format="image/gif" data-original-width="400" '
            f'src="{PROXY}http://upload-images.jianshu.io/upload_images/2300-9a8b?w/400">')
    (ref,) = refs(html).values()
    assert ref.origin == "https://upload-images.jianshu.io/upload_images/2300-9a8b"
    assert ref.where == ("img[data-original-src]",) and ref.kind == "image"
    assert ref.alternates == ("http://upload-images.jianshu.io/upload_images/2300-9a8b?w/400",)
    assert ref.proxy == PROXY  # the site serves its images through the proxy


@pytest.mark.parametrize(("attrs", "original", "alternates"), [
    # Discuz: zoomfile and file hold the attachment, src a placeholder.
    ('src="https://bbs.example/static/none.gif" file="https://bbs.example/att/1.jpg" '
     'zoomfile="https://bbs.example/att/1.jpg"', "https://bbs.example/att/1.jpg",
     ("https://bbs.example/static/none.gif",)),
    # CKEditor keeps the saved source beside src.
    ('src="https://a.example/shown.jpg" _cke_saved_src="https://a.example/saved.jpg"',
     "https://a.example/saved.jpg", ("https://a.example/shown.jpg",)),
    # WordPress (Jetpack carousel): the original file first, sized copies are alternates.
    ('src="https://w.example/a-300x200.jpg" data-orig-file="https://w.example/a.jpg" '
     'data-medium-file="https://w.example/a-300x200.jpg" '
     'data-large-file="https://w.example/a-1024x683.jpg" '
     'data-permalink="https://w.example/post/a/"', "https://w.example/a.jpg",
     ("https://w.example/a-1024x683.jpg", "https://w.example/a-300x200.jpg")),
])
def test_img_attributes_that_hold_the_original(attrs: str, original: str,
                                               alternates: tuple[str, ...]) -> None:
    (ref,) = refs(f"<img {attrs}>").values()
    assert ref.origin == original and ref.alternates == alternates


def test_a_relative_or_non_url_original_attribute_changes_nothing() -> None:
    found = refs('<img data-original-src="/upload/1.jpg" data-original-format="image/png" '
                 'data-lazy-srcset="https://a.example/1.jpg 1x" src="https://a.example/s.jpg">')
    assert list(found) == ["https://a.example/s.jpg"]


def test_a_markdown_link_around_a_thumbnail() -> None:
    (ref,) = refs("[![图](https://c.example/t.jpg)](https://c.example/big.png)").values()
    assert ref.origin == "https://c.example/big.png" and ref.where == ("markdown:link",)
    assert ref.alternates == ("https://c.example/t.jpg",)


def test_the_fixture_in_the_corpus_format() -> None:
    scan = scan_text(FIXTURE.read_text(encoding="utf-8"), FIXTURE.stem, SETTINGS)
    found = {r.origin: r for r in scan.references}
    assert set(found) == {
        "http://upload-images.jianshu.io/upload_images/2300-1b2c3d4e5f",  # headimg
        "https://upload-images.jianshu.io/upload_images/2300-9a8b7c6d5e",
        "http://cdn.news.example.com/2022/05/148.jpg",
        "http://cdn.news.example.com/2022/05/149.png",
        "http://cdn.news.example.com/static/weibo.png",
    }
    assert found["http://cdn.news.example.com/2022/05/149.png"].alternates == (
        "http://cdn.news.example.com/2022/05/149_S.png",)
    assert scan.skipped == ()


def test_every_default_link_rule_unwraps_its_examples() -> None:
    assert DEFAULT_LINKS and Settings().scan.links == DEFAULT_LINKS
    for rule in DEFAULT_LINKS:
        for example in rule.examples:
            assert unwrap_link(example.link, [rule]) == example.original, rule.name
            assert unwrap_link(example.original, [rule]) is None
    check_links(DEFAULT_LINKS)


def test_a_rule_that_misreads_its_example_stops_the_scan(tmp_path: Path) -> None:
    wrong = LinkRule(name="viewer", path="/view", style="param", param="img", examples=[
        LinkExample(link="https://v.example/view?u=https://c.example/1.jpg",
                    original="https://c.example/1.jpg")])
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    settings = ScanSettings(links=[wrong])
    with pytest.raises(ConfigError, match="viewer"):
        list(scan_paths([str(tmp_path)], settings))
    # Every rule has examples, and they are http(s) URLs: checked as the settings load.
    with pytest.raises(ConfigError, match="ARCHIVER_SCAN__LINKS"):
        load_settings(environ={"ARCHIVER_SCAN__LINKS": '[{"name": "bare", "examples": []}]'})
    with pytest.raises(ConfigError, match="ARCHIVER_SCAN__LINKS"):
        load_settings(environ={"ARCHIVER_SCAN__LINKS": json.dumps([{"name": "x", "examples": [
            {"link": "ftp://a/b", "original": "https://c.example/1.jpg"}]}])})


def test_an_extensionless_image_takes_the_kind_its_bytes_show() -> None:
    bare = "https://upload-images.jianshu.io/upload_images/2300-9a8b"
    assert recorded_kind("image", bare, "image/gif") == "gif"
    assert recorded_kind("gif", bare, "image/jpeg") == "image"
    assert recorded_kind("image", "https://a.example/1.jpg", "image/gif") == "image"
    assert recorded_kind("video", bare, "video/mp4") == "video"
    # Before the bytes are seen (the fetcher's cap: the largest of these until they are).
    assert recordable_kinds("image", bare) == recordable_kinds("gif", bare) == ("image", "gif")
    assert recordable_kinds("image", "https://a.example/1.jpg") == ("image",)
    assert recordable_kinds("video", bare) == ("video",)


def test_a_name_saying_smaller_copy_is_never_the_original() -> None:
    (ref,) = refs('<img data-thumb-src="https://a.example/t.jpg" '
                  'data-original-src="https://a.example/o">').values()
    assert ref.origin == "https://a.example/o" and ref.alternates == ("https://a.example/t.jpg",)
    alone = refs('<img src="https://a.example/s.jpg" data-thumb-src="https://a.example/t.jpg">')
    assert set(alone) == {"https://a.example/s.jpg", "https://a.example/t.jpg"}  # as before


def test_the_scan_command_refuses_a_rule_that_misreads_its_example(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archiver.cli.app import load_commands

    (tmp_path / "a.md").write_text("<img src=https://a.example/1.jpg>", encoding="utf-8")
    rule = {"name": "viewer", "path": "/view", "style": "param", "param": "img", "examples": [
        {"link": "https://v.example/view?u=https://c.example/1.jpg",
         "original": "https://c.example/1.jpg"}]}
    result = CliRunner().invoke(load_commands(), ["scan", str(tmp_path)],
                                env={"ARCHIVER_SCAN__LINKS": json.dumps([rule])})
    assert result.exit_code == 2 and "viewer" in result.stderr
