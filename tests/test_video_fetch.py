"""Real yt-dlp with its real v.qq.com extractor (``VQQVideoIE``) against a local v.qq.com over
TLS (tests/support/vqq.py): page, info API, progressive MP4, native HLS, thumbnail, failures.

Every request goes through the filtering proxy in CONNECT tunnels to hosts mapped by
``connect_to``, and yt-dlp verifies the server's certificate against ``fetch.ca_bundle``.
"""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import (
    Blocked,
    ExtractorExhausted,
    ExtractorFailed,
    FetchError,
    FragmentMissing,
    GeoBlocked,
    Gone,
    TooLarge,
)
from archiver.fetch.base import Fetched
from archiver.fetch.video import VideoFetcher
from archiver.models import Asset, Attempt
from archiver.settings import FetchSettings, Settings, VideoSettings
from tests.conftest import TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.vqq import GEO_BLOCKED, Quality, VQQSite, connect_to


def video_settings(tls: TLSOrigin, workdir: Path, *, private: bool = True,
                   max_bytes: int = 64 * 1024 * 1024, ca_bundle: bool = True) -> Settings:
    return Settings(
        fetch=FetchSettings(
            allow_private=["127.0.0.0/8"] if private else [],
            connect_to=connect_to(tls.server.port),
            max_bytes_video=max_bytes,
            ca_bundle=tls.ca_bundle if ca_bundle else None,
        ),
        video=VideoSettings(retries=0, fragment_retries=1, extractor_retries=0,
                            socket_timeout=5, temp_dir=str(workdir)),
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "video-tmp"
    path.mkdir()
    return path


@pytest.fixture
def vqq(tls_origin: TLSOrigin) -> VQQSite:
    return VQQSite(tls_origin.server)


def fetch(settings: Settings, url: str) -> tuple[Fetched, list[Attempt]]:
    fetcher = VideoFetcher(settings)
    attempts: list[Attempt] = []
    return fetcher.fetch(Asset(origin=url, kind="video"), attempts), attempts


VID = "t0012abcdef"


def test_page_is_archived_through_the_real_extractor_with_info_and_thumbnail(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    best = media.mp4(200_000, seed=3)
    thumb = media.jpeg(32, 18)
    url = vqq.publish(VID, [Quality("hd", media.mp4(5_000, seed=1)),
                            Quality("shd", best, width=1280, height=720)],
                      title="雷霆裂阵", thumbnail=thumb)

    fetched, attempts = fetch(video_settings(tls_origin, workdir), url)
    try:
        assert fetched.route == "yt-dlp" and fetched.url == url
        assert fetched.blob.size == len(best) and fetched.blob.media_type == "video/mp4"
        assert fetched.blob.file.read() == best  # the better quality, asked for by name
        assert fetched.related["thumbnail"].file.read() == thumb
        assert fetched.related["thumbnail"].media_type == "image/jpeg"
        info = json.loads(fetched.related["info"].file.read())
        assert info["id"] == VID and info["title"] == "雷霆裂阵"  # "_腾讯视频" cleaned off
        assert info["extractor_key"] == "VQQVideo" and info["format_id"] == "shd"
        assert (info["width"], info["height"]) == (1280, 720) and info["yt_dlp_version"]
        assert info["thumbnail_url"].startswith("https://puui.qpic.cn/")
        assert fetched.facts["extractor"] == "VQQVideo" and fetched.facts["height"] == 720
        assert [a.error for a in attempts] == [None]
    finally:
        fetched.close()
    assert list(workdir.iterdir()) == []
    # The extractor's own requests: page, API for hd then for shd, thumbnail, the shd file.
    server = tls_origin.server
    assert [c["defn"] for c in vqq.videos[VID].api_calls] == ["hd", "shd"]
    assert vqq.videos[VID].api_calls[0]["otype"] == "json"
    assert server.hosts["v.qq.com"] == 1 and server.hosts["puui.qpic.cn"] == 1
    assert server.hits[f"/vqq/{VID}/{VID}.shd.mp4?vkey=K{VID}"] == 1
    assert server.hits[f"/vqq/{VID}/{VID}.hd.mp4?vkey=K{VID}"] == 0


def test_the_ca_bundle_is_what_lets_yt_dlp_trust_the_server(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    url = vqq.publish("t0013abcdef", [Quality("hd", media.mp4(1000))])
    with pytest.raises(FetchError) as info:
        fetch(video_settings(tls_origin, workdir, ca_bundle=False), url)
    assert "certificate" in info.value.message.lower()
    assert tls_origin.server.hits["/x/page/t0013abcdef.html"] == 0
    assert list(workdir.iterdir()) == []


def test_hls_playlist_of_several_segments_is_joined(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    segments = [media.ts_segment(i) for i in range(5)]
    url = vqq.publish("h1abcdefgh", [Quality("hd", segments=list(segments), width=1280,
                                             height=720)], thumbnail=media.png(16, 9))

    fetched, _ = fetch(video_settings(tls_origin, workdir), url)
    try:
        assert fetched.blob.file.read() == b"".join(segments)
        assert fetched.blob.media_type == "video/mp2t"
        assert fetched.facts["format_id"] == "hd" and fetched.facts["height"] == 720
        assert set(fetched.related) == {"info", "thumbnail"}
    finally:
        fetched.close()
    hits = tls_origin.server.hits
    assert all(hits[f"/hls/h1abcdefgh/hd/seg{i}.ts"] == 1 for i in range(5))
    assert list(workdir.iterdir()) == []


def test_missing_hls_segment_fails_instead_of_storing_a_short_video(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    segments: list[bytes | None] = [media.ts_segment(0), media.ts_segment(1), None,
                                    media.ts_segment(3)]
    url = vqq.publish("h2abcdefgh", [Quality("hd", segments=segments)])

    # yt-dlp's fragment retry drops each failed try's response without closing it (the
    # HTTPError it keeps holds the connection until the garbage collector finds it): that
    # third-party leak is collected here, so no later test is blamed for it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(FragmentMissing) as info:
            fetch(video_settings(tls_origin, workdir), url)
        gc.collect()
    assert info.value.code == "fragment-missing" and info.value.retryable
    hits = tls_origin.server.hits
    assert hits["/hls/h2abcdefgh/hd/seg2.ts"] == 2  # one try plus fragment_retries=1
    assert hits["/hls/h2abcdefgh/hd/seg3.ts"] == 0
    assert list(workdir.iterdir()) == []


def test_streamed_video_over_the_cap_is_too_large_and_leaves_nothing(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    # No Content-Length: yt-dlp's max_filesize cannot see the size, the streaming cap must,
    # and it must abort the transfer, not just discard the result afterwards.
    head = media.mp4(1000)
    block = bytes(range(256)) * 256
    total = 64 * 1024 * 1024
    sent: list[int] = [0]

    def chunked(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            h.wfile.write(head)
            while sent[0] < total:
                h.wfile.write(block)
                sent[0] += len(block)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        h.close_connection = True

    url = vqq.publish("b1abcdefgh", [Quality("hd", Response(handler=chunked))])
    with pytest.raises(TooLarge) as info:
        fetch(video_settings(tls_origin, workdir, max_bytes=1_000_000), url)
    assert info.value.code == "too-large"
    assert sent[0] < 16 * 1024 * 1024  # stopped near the 1 MB cap, not after 64 MB
    assert list(workdir.iterdir()) == []


def test_declared_size_over_the_cap_is_too_large_without_download(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    url = vqq.publish("b2abcdefgh", [Quality("hd", media.mp4(2_000_000))])
    with pytest.raises(TooLarge):
        fetch(video_settings(tls_origin, workdir, max_bytes=1_000_000), url)
    assert list(workdir.iterdir()) == []


def test_without_the_allowlist_the_filtering_proxy_blocks_before_the_origin_is_asked(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    url = vqq.publish("s1abcdefgh", [Quality("hd", media.mp4(1000))])
    with pytest.raises(Blocked) as info:
        fetch(video_settings(tls_origin, workdir, private=False), url)
    assert info.value.code == "blocked" and "127.0.0.1" in info.value.message
    assert tls_origin.server.requests == []
    assert list(workdir.iterdir()) == []


def test_removed_video_is_gone(vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    # Nothing published: the page answers 404, as a deleted video's page does.
    with pytest.raises(Gone) as info:
        fetch(video_settings(tls_origin, workdir), "https://v.qq.com/x/page/d1abcdefgh.html")
    assert info.value.code == "gone" and not info.value.retryable


def test_the_info_api_refusing_the_region_is_geo_blocked(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    url = vqq.publish("g1abcdefgh", [Quality("hd", media.mp4(1000))], error=GEO_BLOCKED)
    with pytest.raises(GeoBlocked) as info:
        fetch(video_settings(tls_origin, workdir), url)
    assert info.value.code == "geo-blocked" and not info.value.retryable
    assert tls_origin.server.hits["/vqq/g1abcdefgh/g1abcdefgh.hd.mp4?vkey=Kg1abcdefgh"] == 0


def test_broken_info_api_is_retried_a_bounded_number_of_times(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path) -> None:
    url = vqq.publish("x1abcdefgh", [Quality("hd", media.mp4(1000))])
    tls_origin.server.add("/getvinfo?*", Response(b"QZOutputJson={not json",
                                                  content_type="text/plain"))
    settings = video_settings(tls_origin, workdir).with_overrides(video={"extractor_retries": 2})
    attempts: list[Attempt] = []
    with pytest.raises(ExtractorExhausted) as info:
        VideoFetcher(settings).fetch(Asset(origin=url, kind="video"), attempts)
    assert info.value.code == "extractor-exhausted"
    assert not info.value.retryable and info.value.details["tries"] == 3
    assert isinstance(info.value.__cause__, ExtractorFailed)
    assert tls_origin.server.hits["/getvinfo?*"] == 3
    assert [a.error["code"] for a in attempts if a.error] == ["extractor-error"] * 3
    assert list(workdir.iterdir()) == []


def test_pipeline_records_video_facts_and_related_keys(
        vqq: VQQSite, tls_origin: TLSOrigin, workdir: Path, tmp_path: Path) -> None:
    from archiver.pipeline import archive_asset, build_context
    from archiver.store import open_store

    body = media.mp4(50_000, seed=9)
    url = vqq.publish("p1abcdefgh", [Quality("hd", body)], thumbnail=media.jpeg(20, 10))
    settings = video_settings(tls_origin, workdir).with_overrides(
        store={"url": str(tmp_path / "archive")})
    with open_store(settings.store) as store, build_context(settings, store) as ctx:
        record = archive_asset(Asset(origin=url, kind="video"), ctx)
    assert record.status == "archived", record.error
    assert record.route == "yt-dlp" and record.size == len(body)
    assert (record.width, record.height) == (640, 360)
    assert record.extra["extractor"] == "VQQVideo" and record.extra["format_id"] == "hd"
    assert set(record.related) == {"info", "thumbnail"}
    for key in (record.key, *record.related.values()):
        assert key is not None and (tmp_path / "archive" / key).is_file()


def test_a_plugin_extractor_runs_beside_the_configured_ones(
        origin: OriginServer, workdir: Path) -> None:
    # The stand-in extractor: a plugin handed to the fetcher, with the metadata v.qq.com's
    # extractor does not give (duration, uploader, upload date).
    from tests.support.ytdlp_extractor import LocalVideoIE, progressive, publish

    body = media.mp4(20_000, seed=5)
    url = publish(origin, "plug1", formats=[progressive(origin, "plug1", body)],
                  thumbnail=media.jpeg(16, 9))
    port = origin.port
    settings = Settings(
        fetch=FetchSettings(allow_private=["127.0.0.0/8"],
                            connect_to=[f"video.test:80:127.0.0.1:{port}",
                                        f"media.test:80:127.0.0.1:{port}"]),
        video=VideoSettings(retries=0, extractor_retries=0, temp_dir=str(workdir)))
    fetcher = VideoFetcher(settings, extra_extractors=[LocalVideoIE])
    assert fetcher.matches(Asset(origin=url, kind="video"))
    fetched = fetcher.fetch(Asset(origin=url, kind="video"), [])
    try:
        assert fetched.blob.file.read() == body
        info = json.loads(fetched.related["info"].file.read())
        assert info["duration"] == 12.0 and info["uploader"] == "archiver tests"
        assert info["upload_date"] == "20240105" and fetched.facts["extractor"] == "LocalVideo"
    finally:
        fetched.close()
    assert not VideoFetcher(settings).matches(Asset(origin=url, kind="video"))
