"""The yt-dlp options archiver uses, built by one pure function from the settings.

Every choice here is one yt-dlp does differently when used as a library: retries are 0 there,
missing HLS fragments are skipped silently, ``max_filesize`` only applies to a declared size,
and the generic extractor and external downloaders would open connections the SSRF guard
never sees. Keeping them in one function makes them reviewable and unit-testable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from archiver.settings import Settings

ProgressHook = Callable[[dict[str, Any]], None]
MatchFilter = Callable[..., str | None]

# Names yt-dlp must never load: they fetch arbitrary pages or hand work to other programs.
FORBIDDEN_EXTRACTORS = frozenset({"generic", "end"})


def extractor_patterns(names: Sequence[str]) -> list[str]:
    """``allowed_extractors`` regexes (full-match, case-insensitive in yt-dlp) for exactly the
    named extractors; the generic extractor is refused even when configured."""
    import re

    return [re.escape(name.lower()) for name in names if name.lower() not in FORBIDDEN_EXTRACTORS]


def build_options(
    settings: Settings,
    *,
    workdir: str,
    proxy: str | None,
    max_bytes: int,
    logger: Any = None,
    progress_hook: ProgressHook | None = None,
    match_filter: MatchFilter | None = None,
) -> dict[str, Any]:
    """The ``YoutubeDL`` params for one download into ``workdir`` through ``proxy``.

    ``proxy`` is the local filtering proxy (see ``archiver.fetch.egress``); the configured
    egress proxy is chained behind it, not given to yt-dlp, so that every connection is checked.
    """
    video = settings.video
    fetch = settings.fetch
    options: dict[str, Any] = {
        # A single progressive file first: merging separate video and audio needs ffmpeg.
        "format": video.format,
        "allowed_extractors": extractor_patterns(video.extractors),
        "noplaylist": True,
        # Library defaults are 0 retries and silently skipped fragments: a short video stored as
        # if complete. Fail instead.
        "retries": video.retries,
        "fragment_retries": video.fragment_retries,
        "extractor_retries": video.extractor_retries,
        "file_access_retries": 0,
        "skip_unavailable_fragments": False,
        "keep_fragments": False,
        "socket_timeout": video.socket_timeout,
        "concurrent_fragment_downloads": max(1, video.concurrent_fragments),
        # Checked against a declared Content-Length only; the progress hook and the proxy's
        # byte budget enforce the cap while bytes stream.
        "max_filesize": max_bytes,
        "external_downloader": {"default": "native"},
        "hls_use_mpegts": False,
        "fixup": "never",  # fixups run ffmpeg; the bytes are archived as served
        "postprocessors": [],
        "proxy": proxy if proxy is not None else "",
        "nocheckcertificate": not fetch.verify_tls,
        "http_headers": {"User-Agent": fetch.user_agent},
        "paths": {"home": workdir, "temp": workdir},
        "outtmpl": {"default": "video.%(ext)s", "thumbnail": "thumbnail.%(ext)s"},
        "writethumbnail": video.write_thumbnail,
        "writeinfojson": False,  # archiver writes a curated info JSON (no signed format URLs)
        "writesubtitles": False,
        "writeautomaticsub": False,
        "overwrites": True,
        "continuedl": False,
        "nopart": False,
        "cachedir": False,
        "updatetime": False,
        "quiet": True,
        "noprogress": True,
        "ignoreerrors": False,
        "warn_when_outdated": False,
        "check_formats": False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    if logger is not None:
        options["logger"] = logger
    if progress_hook is not None:
        options["progress_hooks"] = [progress_hook]
    if match_filter is not None:
        options["match_filter"] = match_filter
    return options
