"""Real yt-dlp against the local origin server: progressive MP4, native HLS, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import Blocked, ExtractorFailed, FragmentMissing, Gone, TooLarge
from archiver.fetch.base import Fetched
from archiver.fetch.video import VideoFetcher
from archiver.models import Asset, Attempt
from archiver.settings import FetchSettings, Settings, VideoSettings
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.ytdlp_extractor import LocalVideoIE, hls, progressive, publish, ts_segment


def video_settings(origin: OriginServer, workdir: Path, *, private: bool = True,
                   max_bytes: int = 64 * 1024 * 1024) -> Settings:
    port = origin.port
    return Settings(
        fetch=FetchSettings(
            allow_private=["127.0.0.0/8"] if private else [],
            connect_to=[f"video.test:80:127.0.0.1:{port}", f"media.test:80:127.0.0.1:{port}"],
            max_bytes_video=max_bytes,
        ),
        video=VideoSettings(retries=0, fragment_retries=1, extractor_retries=0,
                            socket_timeout=5, temp_dir=str(workdir)),
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "video-tmp"
    path.mkdir()
    return path


def fetch(settings: Settings, url: str) -> tuple[Fetched, list[Attempt]]:
    fetcher = VideoFetcher(settings, extra_extractors=[LocalVideoIE])
    attempts: list[Attempt] = []
    return fetcher.fetch(Asset(origin=url, kind="video"), attempts), attempts


def test_progressive_mp4_is_archived_with_info_and_thumbnail(origin: OriginServer,
                                                              workdir: Path) -> None:
    body = media.mp4(200_000, seed=3)
    thumb = media.jpeg(32, 18)
    url = publish(origin, "prog1", formats=[progressive(origin, "prog1", body)], thumbnail=thumb)

    fetched, attempts = fetch(video_settings(origin, workdir), url)
    try:
        assert fetched.route == "yt-dlp" and fetched.url == url
        assert fetched.blob.size == len(body) and fetched.blob.media_type == "video/mp4"
        assert fetched.blob.file.read() == body
        assert fetched.related["thumbnail"].file.read() == thumb
        assert fetched.related["thumbnail"].media_type == "image/jpeg"
        info = json.loads(fetched.related["info"].file.read())
        assert info["title"] == "A local video" and info["format_id"] == "mp4-360"
        assert info["duration"] == 12.0 and info["uploader"] == "archiver tests"
        assert info["upload_date"] == "20240105" and info["yt_dlp_version"]
        assert (info["width"], info["height"]) == (640, 360)
        assert fetched.facts["extractor"] == "LocalVideo"
        assert fetched.facts["duration"] == 12.0 and fetched.facts["width"] == 640
        assert [a.error for a in attempts] == [None]
    finally:
        fetched.close()
    assert list(workdir.iterdir()) == []
    assert origin.hosts["media.test"] >= 2 and origin.hosts["video.test"] == 1


def test_hls_playlist_of_several_segments_is_joined(origin: OriginServer, workdir: Path) -> None:
    segments = [ts_segment(i) for i in range(5)]
    url = publish(origin, "hls1", formats=[hls(origin, "hls1", list(segments))],
                  thumbnail=media.png(16, 9))

    fetched, _ = fetch(video_settings(origin, workdir), url)
    try:
        assert fetched.blob.file.read() == b"".join(segments)
        assert fetched.blob.media_type == "video/mp2t"
        assert fetched.facts["format_id"] == "hls-720" and fetched.facts["height"] == 720
        assert set(fetched.related) == {"info", "thumbnail"}
    finally:
        fetched.close()
    assert all(origin.hits[f"/hls/hls1/seg{i}.ts"] == 1 for i in range(5))
    assert list(workdir.iterdir()) == []


def test_missing_hls_segment_fails_instead_of_storing_a_short_video(
        origin: OriginServer, workdir: Path) -> None:
    segments: list[bytes | None] = [ts_segment(0), ts_segment(1), None, ts_segment(3)]
    url = publish(origin, "hls2", formats=[hls(origin, "hls2", segments)])

    with pytest.raises(FragmentMissing) as info:
        fetch(video_settings(origin, workdir), url)
    assert info.value.code == "fragment-missing" and info.value.retryable
    assert origin.hits["/hls/hls2/seg2.ts"] == 2  # one try plus fragment_retries=1
    assert origin.hits["/hls/hls2/seg3.ts"] == 0
    assert list(workdir.iterdir()) == []


def test_streamed_video_over_the_cap_is_too_large_and_leaves_nothing(
        origin: OriginServer, workdir: Path) -> None:
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
        except (BrokenPipeError, ConnectionResetError):
            pass
        h.close_connection = True

    url = publish(origin, "big1",
                  formats=[progressive(origin, "big1", Response(handler=chunked))])
    with pytest.raises(TooLarge) as info:
        fetch(video_settings(origin, workdir, max_bytes=1_000_000), url)
    assert info.value.code == "too-large"
    assert sent[0] < 16 * 1024 * 1024  # stopped near the 1 MB cap, not after 64 MB
    assert list(workdir.iterdir()) == []


def test_declared_size_over_the_cap_is_too_large_without_download(
        origin: OriginServer, workdir: Path) -> None:
    body = media.mp4(2_000_000)
    fmt = progressive(origin, "big2", body)
    url = publish(origin, "big2", formats=[fmt])
    with pytest.raises(TooLarge):
        fetch(video_settings(origin, workdir, max_bytes=1_000_000), url)
    assert list(workdir.iterdir()) == []


def test_without_the_allowlist_the_filtering_proxy_blocks_before_the_origin_is_asked(
        origin: OriginServer, workdir: Path) -> None:
    url = publish(origin, "ssrf1", formats=[progressive(origin, "ssrf1", media.mp4(1000))])
    with pytest.raises(Blocked) as info:
        fetch(video_settings(origin, workdir, private=False), url)
    assert info.value.code == "blocked" and "127.0.0.1" in info.value.message
    assert origin.requests == []
    assert list(workdir.iterdir()) == []


def test_removed_video_is_gone(origin: OriginServer, workdir: Path) -> None:
    # Nothing published: the metadata API answers 404, as a deleted video's page does.
    with pytest.raises(Gone) as info:
        fetch(video_settings(origin, workdir), "http://video.test/watch/deleted1")
    assert info.value.code == "gone" and not info.value.retryable


def test_broken_extractor_is_retried_a_bounded_number_of_times(origin: OriginServer,
                                                               workdir: Path) -> None:
    origin.add("/api/broken1.json", Response(b"{not json", content_type="application/json"))
    settings = video_settings(origin, workdir)
    settings = settings.with_overrides(video={"extractor_retries": 2})
    attempts: list[Attempt] = []
    fetcher = VideoFetcher(settings, extra_extractors=[LocalVideoIE])
    with pytest.raises(ExtractorFailed) as info:
        fetcher.fetch(Asset(origin="http://video.test/watch/broken1", kind="video"), attempts)
    assert info.value.code == "extractor-error"
    assert not info.value.retryable and info.value.details["tries"] == 3
    assert origin.hits["/api/broken1.json"] == 3
    assert [a.error["code"] for a in attempts if a.error] == ["extractor-error"] * 3
    assert list(workdir.iterdir()) == []


def test_pipeline_records_video_facts_and_related_keys(origin: OriginServer, workdir: Path,
                                                       tmp_path: Path) -> None:
    from archiver.pipeline import archive_asset, build_context

    body = media.mp4(50_000, seed=9)
    url = publish(origin, "pipe1", formats=[progressive(origin, "pipe1", body)],
                  thumbnail=media.jpeg(20, 10))
    settings = video_settings(origin, workdir).with_overrides(
        store={"url": str(tmp_path / "archive")})
    ctx = build_context(settings, extra_fetchers=[
        VideoFetcher(settings, extra_extractors=[LocalVideoIE])])
    try:
        record = archive_asset(Asset(origin=url, kind="video"), ctx)
    finally:
        ctx.close()
    assert record.status == "archived", record.error
    assert record.route == "yt-dlp" and record.size == len(body)
    assert record.duration == 12.0 and (record.width, record.height) == (640, 360)
    assert record.extra["extractor"] == "LocalVideo" and record.extra["format_id"] == "mp4-360"
    assert set(record.related) == {"info", "thumbnail"}
    for key in (record.key, *record.related.values()):
        assert key is not None and (tmp_path / "archive" / key).is_file()
