"""Content sniffing: what a body really is, from its first bytes, never from its headers.

Proxies and CDNs answer errors with status 200 and an HTML page, and servers label media with
whatever type they like, so the media type and the file extension of an archived object come
from magic bytes only. ``sniff`` needs the first ``HEAD_BYTES`` of a body.
"""

from __future__ import annotations

import re

from archiver.models import Kind
from archiver.urls.kinds import MEDIA_EXTENSIONS, extension

HEAD_BYTES = 512

IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/heic",
        "image/bmp",
        "image/svg+xml",
        "image/x-icon",
        "image/tiff",
    }
)
VIDEO_TYPES = frozenset(
    {
        "video/mp4",
        "video/webm",
        "video/x-matroska",
        "video/quicktime",
        "video/mp2t",
        "application/vnd.apple.mpegurl",
        "video/x-flv",
        "video/ogg",
    }
)
# Sound files: the scanner's ``video`` kind covers <audio> and .mp3/.m4a/... links (what
# yt-dlp and a player treat alike), so a video asset takes these too.
AUDIO_TYPES = frozenset(
    {
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/ogg",
        "audio/opus",
        "audio/wav",
        "audio/flac",
    }
)

# ISO-BMFF major/compatible brands: which ones mean a still image rather than a video.
_AVIF_BRANDS = (b"avif", b"avis")
_HEIC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1")
_QT_BRANDS = (b"qt  ",)
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_SVG_RE = re.compile(
    rb"^(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE\s+svg[^>]*>\s*)?"
    rb"(?:<!--.*?-->\s*)*<svg[\s>/]",
    re.IGNORECASE | re.DOTALL,
)
_HTML_MARKERS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<title",
    b"<script",
    b"<div",
    b"<p>",
    b"<h1",
    b"<meta",
    b"<!--",
    b"<?xml",
    b"<error",
    b"{",
    b"[",
)


def sniff(head: bytes) -> tuple[str, str] | None:
    """The (media type, extension without dot) that ``head`` starts with, or None."""
    if len(head) < 2:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "webp"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # EBML: the DocType element says webm or matroska; look for it in the header.
        return ("video/webm", "webm") if b"webm" in head[:64] else ("video/x-matroska", "mkv")
    if head.startswith(b"BM") and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp", "bmp"
    if head.startswith(b"\x00\x00\x01\x00") and len(head) >= 6 and head[4:6] != b"\x00\x00":
        return "image/x-icon", "ico"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff", "tif"
    if head.startswith(b"ID3") or (
        head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0
    ):
        return "audio/mpeg", "mp3"
    if head[0] == 0xFF and (head[1] & 0xF6) == 0xF0:  # ADTS: MPEG sync, layer 0
        return "audio/aac", "aac"
    if head.startswith(b"FLV\x01"):
        return "video/x-flv", "flv"
    if head.startswith(b"OggS"):  # the first page names the codec
        if b"\x80theora" in head:
            return "video/ogg", "ogv"
        return ("audio/opus", "opus") if b"OpusHead" in head else ("audio/ogg", "ogg")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav", "wav"
    if head.startswith(b"fLaC"):
        return "audio/flac", "flac"
    if head[0] == 0x47 and len(head) > 188 and head[188] == 0x47:
        return "video/mp2t", "ts"
    text = _text_start(head)
    if text.startswith(b"#EXTM3U"):
        return "application/vnd.apple.mpegurl", "m3u8"
    if _SVG_RE.match(text):
        return "image/svg+xml", "svg"
    return None


def _sniff_ftyp(head: bytes) -> tuple[str, str]:
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    # Compatible brands follow the minor version, up to the end of the ftyp box.
    end = min(len(head), size if 16 <= size <= 256 else 32)
    brands = [major] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    if major in _AVIF_BRANDS or (
        major in (b"mif1", b"msf1") and any(b in _AVIF_BRANDS for b in brands)
    ):
        return "image/avif", "avif"
    if major in _HEIC_BRANDS:
        return "image/heic", "heic"
    if major in _QT_BRANDS:
        return "video/quicktime", "mov"
    if major in _AUDIO_BRANDS:
        return "audio/mp4", "m4a"
    return "video/mp4", "mp4"


def _text_start(head: bytes) -> bytes:
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    return head.lstrip(b" \t\r\n\x00")


def looks_like_text_or_html(head: bytes) -> bool:
    """True when ``head`` reads as HTML, XML, JSON or plain text rather than binary media
    (an SVG counts as media: call ``sniff`` first)."""
    text = _text_start(head)
    if not text:
        return True
    lowered = text[:64].lower()
    if any(lowered.startswith(m) for m in _HTML_MARKERS):
        return True
    sample = text[:HEAD_BYTES]
    try:
        decoded = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(sample) - 3:
            return False
        decoded = sample[: exc.start].decode("utf-8")
    printable = sum(1 for c in decoded if c.isprintable() or c in "\r\n\t")
    return printable >= 0.95 * max(1, len(decoded))


def is_media_for(kind: str, media_type: str) -> bool:
    """Whether a sniffed type is acceptable for an asset of ``kind``: a video asset takes only
    video and sound types (``<audio>`` and sound files are the scanner's ``video``); an image
    or GIF asset takes any image (a GIF that turns out to be a JPEG is still the media the
    article shows, and the record keeps the real type)."""
    if kind == "video":
        return media_type in VIDEO_TYPES or media_type in AUDIO_TYPES
    return media_type in IMAGE_TYPES


def recorded_kind(kind: Kind, origin: str, media_type: str) -> Kind:
    """The kind an asset is recorded as: the one its URL gave, except for an image or GIF
    whose URL names no file type (an extensionless CDN URL, ``data-original-src``), whose
    kind only its bytes tell: ``gif`` for a GIF, else ``image``."""
    if _kind_by_url(kind, origin):
        return kind
    return "gif" if media_type == "image/gif" else "image"


def recordable_kinds(kind: Kind, origin: str) -> tuple[Kind, ...]:
    """The kinds ``recorded_kind`` can give an asset before its bytes are seen: the one its
    URL gave, or, for an image or GIF whose URL names no file type, either."""
    return (kind,) if _kind_by_url(kind, origin) else ("image", "gif")


def _kind_by_url(kind: Kind, origin: str) -> bool:
    return kind == "video" or extension(origin) in MEDIA_EXTENSIONS
