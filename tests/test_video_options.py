"""The pure yt-dlp options function, and that yt-dlp reads the options as meant."""

from __future__ import annotations

import copy

from archiver.fetch.ytdlp_options import build_options, extractor_patterns
from archiver.settings import FetchSettings, Settings, VideoSettings


def options(settings: Settings | None = None, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {"workdir": "/tmp/w", "proxy": "http://127.0.0.1:9", "max_bytes": 123}
    args.update(kw)
    return build_options(settings or Settings(), **args)  # type: ignore[arg-type]


def test_defaults_fail_loudly_and_stay_native() -> None:
    opts = options()
    assert opts["format"] == "best[ext=mp4][vcodec!=none][acodec!=none]/best[ext=mp4]/best"
    assert opts["retries"] == 5 and opts["fragment_retries"] == 10
    assert opts["extractor_retries"] == 2
    assert opts["skip_unavailable_fragments"] is False
    assert opts["socket_timeout"] == 30.0 and opts["concurrent_fragment_downloads"] == 1
    assert opts["max_filesize"] == 123
    assert opts["noplaylist"] is True
    assert opts["external_downloader"] == {"default": "native"}
    assert opts["fixup"] == "never" and opts["postprocessors"] == []
    assert opts["proxy"] == "http://127.0.0.1:9"
    assert opts["paths"] == {"home": "/tmp/w", "temp": "/tmp/w"}
    assert opts["writethumbnail"] is True and opts["writeinfojson"] is False
    assert opts["allowed_extractors"] == ["vqq:video"]
    assert opts["nocheckcertificate"] is False
    assert "logger" not in opts and "progress_hooks" not in opts


def test_settings_flow_into_options() -> None:
    settings = Settings(
        fetch=FetchSettings(verify_tls=False, user_agent="ua/1"),
        video=VideoSettings(format="worst", retries=1, fragment_retries=0, socket_timeout=3,
                            concurrent_fragments=4, write_thumbnail=False,
                            extractors=["vqq:video", "Generic", "wetv:episode"]),
    )
    hook = print
    opts = options(settings, max_bytes=10, progress_hook=hook, logger="L")
    assert opts["format"] == "worst" and opts["retries"] == 1
    assert opts["fragment_retries"] == 0 and opts["socket_timeout"] == 3
    assert opts["concurrent_fragment_downloads"] == 4 and opts["writethumbnail"] is False
    assert opts["nocheckcertificate"] is True
    assert opts["http_headers"] == {"User-Agent": "ua/1"}
    assert opts["progress_hooks"] == [hook] and opts["logger"] == "L"
    # The generic extractor is refused even when configured; names are exact, not regexes.
    assert opts["allowed_extractors"] == ["vqq:video", r"wetv:episode"]


def test_pure_same_input_same_output_and_nothing_shared() -> None:
    """yt-dlp changes the params it is given: a call's options share no mutable value with the
    settings or with another call's options."""
    settings = Settings()
    first, expected = options(settings), copy.deepcopy(options(settings))
    assert first == expected
    for value in first.values():
        if isinstance(value, list):
            value.append("changed")
        elif isinstance(value, dict):
            value["changed"] = True
    assert options(settings) == expected


def test_extractor_patterns_escape_regex_characters() -> None:
    assert extractor_patterns(["a.b", "end", "GENERIC"]) == [r"a\.b"]


def test_yt_dlp_loads_only_the_allowed_extractors() -> None:
    from yt_dlp import YoutubeDL

    with YoutubeDL(options()) as ydl:
        names = {ie.IE_NAME for ie in ydl._ies.values()}
    assert names == {"vqq:video"}


def test_no_proxy_means_an_explicit_direct_setting_not_the_environment() -> None:
    # yt-dlp falls back to *_proxy variables when "proxy" is absent; "" means direct.
    assert options(proxy=None)["proxy"] == ""
