"""Content sniffing from magic bytes, on real media bytes made by Pillow and by hand."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from archiver.fetch.sniff import is_media_for, looks_like_text_or_html, sniff
from tests.support import media


def _pillow(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, fmt, **kw)
    return buf.getvalue()


def _ftyp(major: bytes, *compat: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compat)
    return struct.pack(">I", len(body) + 4) + body + b"\x00" * 32


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (media.jpeg(), ("image/jpeg", "jpg")),
        (media.png(), ("image/png", "png")),
        (media.gif(), ("image/gif", "gif")),
        (media.webp(), ("image/webp", "webp")),
        (_pillow("BMP"), ("image/bmp", "bmp")),
        (_pillow("TIFF"), ("image/tiff", "tif")),
        (_pillow("ICO"), ("image/x-icon", "ico")),
        (media.mp4(), ("video/mp4", "mp4")),
        (_ftyp(b"mp42", b"isom", b"mp42"), ("video/mp4", "mp4")),
        (_ftyp(b"M4V ", b"M4V ", b"mp42"), ("video/mp4", "mp4")),
        (_ftyp(b"avc1", b"isom"), ("video/mp4", "mp4")),
        (_ftyp(b"avif", b"mif1", b"miaf"), ("image/avif", "avif")),
        (_ftyp(b"avis", b"avif", b"msf1"), ("image/avif", "avif")),
        (_ftyp(b"mif1", b"avif", b"miaf"), ("image/avif", "avif")),
        (_ftyp(b"heic", b"mif1", b"heic"), ("image/heic", "heic")),
        (_ftyp(b"qt  ", b"qt  "), ("video/quicktime", "mov")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87", ("video/webm", "webm")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", ("video/x-matroska", "mkv")),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", ("audio/mpeg", "mp3")),
        (b"\xff\xfb\x90\x64" + b"\x00" * 60, ("audio/mpeg", "mp3")),  # MPEG-1 layer 3 frame
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", ("audio/aac", "aac")),  # ADTS (layer 0)
        (_ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), ("audio/mp4", "m4a")),
        (media.wav(), ("audio/wav", "wav")),
        (b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00", ("audio/flac", "flac")),
        (media.ogg(b"\x01vorbis\x00\x00\x00\x00\x02"), ("audio/ogg", "ogg")),
        (media.ogg(b"OpusHead\x01\x02"), ("audio/opus", "opus")),
        (media.ogg(b"\x80theora\x03\x02\x01"), ("video/ogg", "ogv")),
        (b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", ("video/x-flv", "flv")),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n", ("application/vnd.apple.mpegurl", "m3u8")),
        ((b"\x47" + b"\x00" * 187) * 3, ("video/mp2t", "ts")),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', ("image/svg+xml", "svg")),
        (
            b'\xef\xbb\xbf  \n<?xml version="1.0" encoding="UTF-8"?>\n<!-- made by hand -->\n'
            b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">\n<svg width="1">',
            ("image/svg+xml", "svg"),
        ),
    ],
)
def test_sniff_known_types(data: bytes, expected: tuple[str, str]) -> None:
    assert sniff(data[:512]) == expected


@pytest.mark.parametrize(
    "data",
    [
        media.HTML_ERROR_PAGE,
        b"  <html><body>not an svg <svg></svg></body></html>",
        b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>',
        b'{"error": "quota exceeded"}',
        b"worker dead",
        b"",
        b"x",
    ],
)
def test_error_pages_are_not_media(data: bytes) -> None:
    assert sniff(data) is None
    assert looks_like_text_or_html(data)


def test_binary_noise_is_neither_media_nor_text() -> None:
    noise = bytes(range(256)) * 2
    assert sniff(noise) is None
    assert not looks_like_text_or_html(noise)


def test_utf8_text_cut_mid_character_is_still_text() -> None:
    text = ("出错了，请稍后再试。" * 40).encode("utf-8")[:512]
    assert looks_like_text_or_html(text)


@pytest.mark.parametrize(
    ("kind", "media_type", "ok"),
    [
        ("image", "image/jpeg", True),
        ("gif", "image/jpeg", True),  # a GIF reference serving a still is still the media
        ("gif", "video/mp4", False),
        ("video", "video/mp4", True),
        ("video", "image/gif", False),
        ("image", "audio/mpeg", False),
        ("video", "audio/mpeg", True),  # <audio src=talk.mp3> is a video asset
        ("video", "audio/ogg", True),
        ("gif", "audio/mp4", False),
        ("video", "application/octet-stream", False),
    ],
)
def test_media_accepted_per_kind(kind: str, media_type: str, ok: bool) -> None:
    assert is_media_for(kind, media_type) is ok
