"""The video fetcher: pages a yt-dlp extractor handles (v.qq.com first), archived via yt-dlp.

Direct media files (``.mp4``, ``<video src>``) are not matched here; the HTTP fetcher takes them
with the video size cap. yt-dlp is imported lazily, runs with options from
``archiver.fetch.ytdlp_options`` behind a per-fetch filtering proxy (``archiver.fetch.egress``)
and writes into a per-task temporary directory that is removed on every path: the video file is
opened and unlinked before the directory goes, so the returned Blob does not depend on the
caller cleaning up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archiver.errors import (
    ExtractorExhausted,
    ExtractorFailed,
    FetchError,
    NotMedia,
    TooLarge,
    Unsupported,
)
from archiver.fetch.base import Blob, Fetched
from archiver.fetch.egress import EgressProxy
from archiver.fetch.guard import Guard
from archiver.fetch.sniff import is_media_for
from archiver.fetch.spool import blob_from_file
from archiver.fetch.ytdlp_errors import map_error, release
from archiver.fetch.ytdlp_options import build_options, open_youtube_dl
from archiver.models import Asset, Attempt, now_iso
from archiver.settings import Settings
from archiver.urls.vqq import canonical_video

# Bytes the proxy may relay beyond the video cap: pages, API answers, playlists, a thumbnail.
_OVERHEAD = 32 * 1024 * 1024
_INFO_FIELDS = ("id", "title", "duration", "uploader", "upload_date", "extractor",
                "extractor_key", "format_id", "width", "height", "ext", "webpage_url")


class VideoFetcher:
    """Fetcher for ``kind == "video"`` assets whose origin a configured extractor handles."""

    name: str = "yt-dlp"
    example_urls: tuple[str, ...] = (
        "https://v.qq.com/x/page/k3318ooj0ej.html",
        "https://v.qq.com/x/cover/mzc00200p29k31e/s0043cwsgj0.html",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        guard: Guard | None = None,
        extra_extractors: Sequence[type] = (),
    ) -> None:
        self.settings = settings
        self.guard = guard or Guard(settings.fetch.allow_private, settings.fetch.connect_to)
        # Test-only (or plugin) extractors, registered on each YoutubeDL next to the allowed ones.
        self.extra_extractors = tuple(extra_extractors)
        self._classes: tuple[Any, ...] | None = None

    def extractor_classes(self) -> tuple[Any, ...]:
        """The extractor classes that may run: the configured ones plus ``extra_extractors``."""
        if self._classes is None:
            from yt_dlp.extractor import gen_extractor_classes

            wanted = {n.lower() for n in self.settings.video.extractors} - {"generic"}
            found = [ie for ie in gen_extractor_classes() if ie.IE_NAME.lower() in wanted]
            self._classes = (*found, *self.extra_extractors)
        return self._classes

    def page_url(self, url: str) -> str | None:
        """The URL yt-dlp is given for ``url`` (v.qq.com forms canonicalised), or None when no
        allowed extractor accepts it."""
        candidate = canonical_video(url) or url
        if any(ie.suitable(candidate) for ie in self.extractor_classes()):
            return candidate
        return None

    def matches(self, asset: Asset) -> bool:
        return asset.kind == "video" and self.page_url(asset.origin) is not None

    def fetch(self, asset: Asset, attempts: list[Attempt]) -> Fetched:
        """Archive the video page ``asset.origin``: the video file, its info JSON and thumbnail.

        Raises Unsupported, Gone, GeoBlocked, DRMProtected, TooLarge, Blocked, NotMedia,
        FragmentMissing, network errors, or ExtractorExhausted once the extractor has failed
        ``1 + video.extractor_retries`` times.
        """
        url = self.page_url(asset.origin)
        if url is None:
            raise Unsupported(f"no allowed yt-dlp extractor handles {asset.origin}")
        tries = 1 + max(0, self.settings.video.extractor_retries)
        for n in range(tries):
            at = now_iso()
            started = time.monotonic()
            try:
                fetched = self._fetch_once(url)
            except FetchError as exc:
                attempts.append(Attempt(route=self.name, url=url, error=exc.to_dict(),
                                        elapsed=round(time.monotonic() - started, 3), at=at))
                if not isinstance(exc, ExtractorFailed):
                    raise
                if n + 1 < tries:
                    continue
                raise ExtractorExhausted(f"{exc.message} (failed {tries} tries)",
                                         **{**exc.details, "tries": tries}) from exc
            attempts.append(Attempt(route=self.name, url=url,
                                    elapsed=round(time.monotonic() - started, 3), at=at))
            return fetched
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Nothing is held between fetches (each has its own proxy and directory)."""

    def _fetch_once(self, url: str) -> Fetched:
        cap = self.settings.fetch.max_bytes_video
        workdir = tempfile.mkdtemp(prefix="archiver-video-", dir=self.settings.video.temp_dir)
        try:
            proxy = EgressProxy(
                self.guard,
                upstream=lambda host: self.settings.fetch.rule_for(host).egress_proxy,
                budget=cap + _OVERHEAD,
                connect_timeout=self.settings.fetch.connect_timeout,
                idle_timeout=self.settings.video.socket_timeout + 5,
            )
            with proxy:
                info, watch = self._run(url, workdir, proxy.url, cap)
                over = cap if (watch.tripped or proxy.over_budget) else None
                if info is None or over is not None:
                    raise map_error(watch.failure or ExtractorFailed("yt-dlp stopped"),
                                    messages=list(watch.messages), over_cap=over,
                                    blocked=proxy.blocked, fragmented=watch.fragmented)
            return self._collect(url, info, Path(workdir), cap)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run(self, url: str, workdir: str, proxy: str, cap: int
             ) -> tuple[dict[str, Any] | None, _Watch]:
        watch = _Watch(cap)
        options = build_options(self.settings, workdir=workdir, proxy=proxy, max_bytes=cap,
                                logger=watch, progress_hook=watch.progress,
                                match_filter=watch.match_filter)
        try:
            with open_youtube_dl(options, self.settings.fetch.ca_bundle) as ydl:
                for ie in self.extra_extractors:
                    ydl.add_info_extractor(ie())
                raw = ydl.extract_info(url, download=False, process=False)
                if raw.get("_type") in ("playlist", "multi_video"):
                    raise Unsupported(f"{url} is a playlist, not one video")
                info = ydl.process_ie_result(raw, download=True)
                return ydl.sanitize_info(info), watch
        except Exception as exc:  # yt-dlp raises many types; map_error sorts them
            release(exc)
            watch.failure = exc
            return None, watch

    def _collect(self, url: str, info: dict[str, Any], workdir: Path, cap: int) -> Fetched:
        from yt_dlp.version import __version__ as ytdlp_version

        path = _video_path(info, workdir)
        if path is None:
            size = info.get("filesize") or info.get("filesize_approx")
            if size and int(size) > cap:
                raise TooLarge(f"declared size {size} exceeds the {cap}-byte cap", cap=cap)
            raise ExtractorFailed(f"yt-dlp reported success for {url} but wrote no file")
        blobs: list[Blob] = []
        try:
            video = _adopt(path, cap, blobs)
            if not is_media_for("video", video.media_type):
                raise NotMedia(f"yt-dlp output sniffs as {video.media_type}, not a video",
                               media_type=video.media_type)
            related: dict[str, Blob] = {}
            thumb = next(iter(sorted(workdir.glob("thumbnail.*"))), None)
            if thumb is not None:
                related["thumbnail"] = _adopt(thumb, self.settings.fetch.max_bytes_image, blobs)
            summary = {k: info.get(k) for k in _INFO_FIELDS}
            summary.update(yt_dlp_version=ytdlp_version, filesize=video.size,
                           sha256=video.sha256, thumbnail_url=info.get("thumbnail"))
            related["info"] = _json_blob(summary)
            blobs.append(related["info"])
        except BaseException:
            for blob in blobs:
                blob.close()
            raise
        facts = {
            "duration": info.get("duration"),
            "width": info.get("width"),
            "height": info.get("height"),
            "extractor": info.get("extractor_key") or info.get("extractor"),
            "format_id": info.get("format_id"),
            "yt_dlp_version": ytdlp_version,
            "title": info.get("title"),
        }
        return Fetched(blob=video, route=self.name, url=url,
                       facts={k: v for k, v in facts.items() if v is not None}, related=related)


class _Watch:
    """yt-dlp's logger, progress hook and match filter for one task: it keeps the messages an
    error is mapped from and notices a size over the cap, declared or streamed."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.tripped = False
        self.fragmented = False  # a segmented (HLS/DASH) download had started
        self.failure: BaseException | None = None
        self.messages: deque[str] = deque(maxlen=20)

    def progress(self, status: dict[str, Any]) -> None:
        if status.get("fragment_count") or status.get("fragment_index") is not None:
            self.fragmented = True
        done = status.get("downloaded_bytes") or 0
        if done > self.cap:
            self.tripped = True
            # yt-dlp lets this propagate out of the downloader, which aborts the download.
            raise TooLarge(f"download passed the {self.cap}-byte cap", cap=self.cap)

    def match_filter(self, info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        if incomplete:
            return None
        size = info.get("filesize") or info.get("filesize_approx")
        if size and int(size) > self.cap:
            self.tripped = True
            return f"declared size {size} exceeds the cap"
        return None

    def debug(self, msg: str) -> None:
        if "max-filesize" in msg:
            self.tripped = True
        if not msg.startswith("[debug]"):
            self.messages.append(msg)

    def info(self, msg: str) -> None:
        self.messages.append(msg)

    def warning(self, msg: str) -> None:
        self.messages.append(msg)

    def error(self, msg: str) -> None:
        self.messages.append(msg)


def _video_path(info: dict[str, Any], workdir: Path) -> Path | None:
    for download in info.get("requested_downloads") or ():
        candidate = download.get("filepath")
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    found = [p for p in workdir.glob("video.*") if p.suffix not in (".part", ".ytdl")]
    return found[0] if found else None


def _adopt(path: Path, cap: int, blobs: list[Blob]) -> Blob:
    """A Blob over ``path``, which is then unlinked: the open handle keeps the bytes readable
    and the temporary directory can go (POSIX)."""
    blob = blob_from_file(path, cap)
    blobs.append(blob)
    os.unlink(path)
    return blob


def _json_blob(data: dict[str, Any]) -> Blob:
    body = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    fh = tempfile.TemporaryFile(prefix="archiver-")  # noqa: SIM115 - owned by the Blob
    fh.write(body)
    fh.seek(0)
    return Blob(file=fh, sha256=hashlib.sha256(body).hexdigest(), size=len(body),
                media_type="application/json", ext="json")
