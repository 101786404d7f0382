"""v.qq.com URL forms: every one maps to the page form yt-dlp's own vqq:video extractor takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from archiver.fetch.video import VideoFetcher
from archiver.models import Asset
from archiver.settings import Settings
from archiver.urls import canonical_video

PAGE = "https://v.qq.com/x/page/k3318ooj0ej.html"
FORMS = {
    # The corpus form (zaker-seed.md): the iframe player carrying the page URL as vid.
    "//v.qq.com/iframe/player.html?vid=https://v.qq.com/x/page/k3318ooj0ej.html&auto=0": PAGE,
    "https://v.qq.com/iframe/player.html?vid=https://v.qq.com/x/page/k3318ooj0ej.html&auto=0":
        PAGE,
    "https://v.qq.com/iframe/player.html?vid=k3318ooj0ej&tiny=0&auto=0": PAGE,
    "//v.qq.com/iframe/player.html?vid=k3318ooj0ej": PAGE,
    "https://v.qq.com/txp/iframe/player.html?vid=k3318ooj0ej": PAGE,
    "https://v.qq.com/x/page/k3318ooj0ej.html": PAGE,
    "http://v.qq.com/x/page/k3318ooj0ej.html": PAGE,
    "https://v.qq.com/x/cover/mzc00200p29k31e/s0043cwsgj0.html":
        "https://v.qq.com/x/cover/mzc00200p29k31e/s0043cwsgj0.html",
    # A series page naming its episode: that episode (the page alone is a playlist).
    "https://v.qq.com/x/cover/mzc00200p29k31e.html?vid=s0043cwsgj0&ptag=x":
        "https://v.qq.com/x/cover/mzc00200p29k31e/s0043cwsgj0.html",
}


def vqq_video_ie() -> Any:
    from yt_dlp.extractor import gen_extractor_classes

    return next(ie for ie in gen_extractor_classes() if ie.IE_NAME == "vqq:video")


@pytest.mark.parametrize(("url", "expected"), sorted(FORMS.items()))
def test_every_form_maps_to_what_the_vqq_extractor_accepts(url: str, expected: str) -> None:
    canonical = canonical_video(url)
    assert canonical == expected
    assert vqq_video_ie().suitable(canonical)


def test_the_iframe_form_itself_is_not_accepted_by_yt_dlp() -> None:
    # Why canonicalisation exists at all: yt-dlp has no extractor for the player iframe.
    assert not vqq_video_ie().suitable("https://v.qq.com/iframe/player.html?vid=k3318ooj0ej")


@pytest.mark.corpus
def test_every_vqq_url_in_the_corpus_maps(corpus_dir: Path) -> None:
    found: set[str] = set()
    for path in corpus_dir.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        found.update(m.replace("&amp;", "&")
                     for m in re.findall(r'(?:https?:)?//v\.qq\.com/[^"\'\s<>]+', text))
    assert found, "the corpus has v.qq.com references (zaker-seed.md)"
    for url in found:
        canonical = canonical_video(url)
        assert canonical == PAGE, url
        assert vqq_video_ie().suitable(canonical)


def test_fetcher_matches_video_pages_only() -> None:
    fetcher = VideoFetcher(Settings())
    for url in FORMS:
        assert fetcher.matches(Asset(origin=url, kind="video")), url
        assert fetcher.page_url(url) == FORMS[url]
    # Direct files stay with the HTTP fetcher; images never go to yt-dlp.
    assert not fetcher.matches(Asset(origin="https://cdn.example.com/a.mp4", kind="video"))
    assert not fetcher.matches(Asset(origin=PAGE, kind="image"))
    # A cover (series) page is a playlist: vqq:series is not an allowed extractor.
    assert not fetcher.matches(
        Asset(origin="https://v.qq.com/x/cover/mzc00200p29k31e.html", kind="video"))
    assert not fetcher.matches(Asset(origin="https://tv.sohu.com/s/sohuplayer/iplay.html?bid=1",
                                     kind="video"))


def test_example_urls_match_the_fetcher() -> None:
    fetcher = VideoFetcher(Settings())
    for url in fetcher.example_urls:
        assert fetcher.matches(Asset(origin=url, kind="video"))
