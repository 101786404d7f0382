"""Media kinds from a URL: its file extension, or a v.qq.com video page."""

from __future__ import annotations

from urllib.parse import urlsplit

from archiver.models import Kind
from archiver.urls.vqq import canonical_video

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".svg", ".avif",
    ".heic", ".heif", ".tif", ".tiff", ".ico", ".apng",
})
VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".m3u8", ".m4v", ".ogv", ".mkv", ".flv"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wav", ".flac"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS


def extension(url: str) -> str:
    """The lowercased extension of the URL's last path segment ('' when none).

    jandan's ``x.jpg!custom`` style suffixes (image-server variants) are ignored.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    name = path.rsplit("/", 1)[-1].split("!", 1)[0]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_media_url(url: str) -> bool:
    """True when the URL names a media file by extension or is a v.qq.com video."""
    return extension(url) in MEDIA_EXTENSIONS or canonical_video(url) is not None


def kind_of(origin: str, hint: str | None = None) -> Kind:
    """``video`` for v.qq.com pages, video/audio files or a video hint; ``gif`` for a .gif
    path or a gif hint; else ``image``."""
    ext = extension(origin)
    if hint == "video" or ext in VIDEO_EXTENSIONS or ext in AUDIO_EXTENSIONS:
        return "video"
    if canonical_video(origin) is not None:
        return "video"
    if hint == "gif" or ext == ".gif":
        return "gif"
    return "image"
