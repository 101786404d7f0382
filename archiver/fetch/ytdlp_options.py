"""The yt-dlp options archiver uses, built by one pure function from the settings.

Every choice here is one yt-dlp does differently when used as a library: retries are 0 there,
missing HLS fragments are skipped silently, ``max_filesize`` only applies to a declared size,
and the generic extractor and external downloaders would open connections the SSRF guard
never sees. Keeping them in one function makes them reviewable and unit-testable.
"""

from __future__ import annotations

import functools
import ssl
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


def open_youtube_dl(params: dict[str, Any], ca_bundle: str | None) -> Any:
    """A ``YoutubeDL`` for ``params`` whose certificate checks use ``ca_bundle`` (the
    ``fetch.ca_bundle`` setting) instead of certifi's store, as the HTTP fetcher does.

    yt-dlp has no option for a CA file: its request handlers build their SSL context in
    ``_make_sslcontext``, so each handler of this instance gets one that loads the bundle.
    """
    if not ca_bundle:
        from yt_dlp import YoutubeDL

        return YoutubeDL(params)
    return _bundle_class()(params, ca_bundle)


@functools.cache
def _bundle_class() -> type:
    from yt_dlp import YoutubeDL
    from yt_dlp.networking._helper import make_ssl_context

    class BundleYoutubeDL(YoutubeDL):  # type: ignore[misc]
        def __init__(self, params: dict[str, Any], ca_bundle: str) -> None:
            self._ca_bundle = ca_bundle
            super().__init__(params)

        def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
            director = super().build_request_director(handlers, preferences)
            for handler in director.handlers.values():
                if getattr(handler, "verify", False):
                    handler._make_sslcontext = functools.partial(
                        _bundle_context, handler, self._ca_bundle, make_ssl_context)
            return director

    return BundleYoutubeDL


def _bundle_context(handler: Any, ca_bundle: str, make: Callable[..., ssl.SSLContext],
                    legacy_ssl_support: bool | None = None) -> ssl.SSLContext:
    # yt-dlp's own context (ciphers, ALPN, client certificate) without certifi, then the bundle.
    legacy = handler.legacy_ssl_support if legacy_ssl_support is None else legacy_ssl_support
    context = make(verify=False, legacy_support=legacy, **handler._client_cert)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.load_verify_locations(cafile=ca_bundle)
    return context
