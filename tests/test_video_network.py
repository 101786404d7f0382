"""Archives a real v.qq.com video through yt-dlp's own extractor. Needs the internet, so it is
excluded by default; run it by hand with ``pytest -m network tests/test_video_network.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archiver.fetch.video import VideoFetcher
from archiver.models import Asset, Attempt
from archiver.settings import Settings, VideoSettings

# The one Tencent video of the corpus (zaker-seed.md), in the iframe form the article uses.
IFRAME = "//v.qq.com/iframe/player.html?vid=https://v.qq.com/x/page/k3318ooj0ej.html&auto=0"


@pytest.mark.network
def test_archives_the_corpus_video_from_v_qq_com(tmp_path: Path) -> None:
    settings = Settings(video=VideoSettings(temp_dir=str(tmp_path)))
    fetcher = VideoFetcher(settings)
    attempts: list[Attempt] = []
    asset = Asset(origin=IFRAME, kind="video")
    assert fetcher.matches(asset)
    fetched = fetcher.fetch(asset, attempts)
    try:
        assert fetched.url == "https://v.qq.com/x/page/k3318ooj0ej.html"
        assert fetched.blob.size > 100_000 and fetched.blob.media_type.startswith("video/")
        assert fetched.facts["extractor"] == "VQQVideo"
        info = json.loads(fetched.related["info"].file.read())
        assert info["id"] == "k3318ooj0ej" and info["title"]
    finally:
        fetched.close()
    assert list(tmp_path.iterdir()) == []
