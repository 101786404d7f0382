"""Content sniffing from magic bytes, on real media bytes made by Pillow and by hand."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from archiver.errors import TooLarge
from archiver.fetch.facts import image_facts
from archiver.fetch.sniff import is_media_for, looks_like_text_or_html, sniff
from archiver.fetch.spool import blob_from_file, spool
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
    ],
)
def test_media_accepted_per_kind(kind: str, media_type: str, ok: bool) -> None:
    assert is_media_for(kind, media_type) is ok


def test_spool_hashes_counts_and_spills_to_disk() -> None:
    data = media.mp4(payload_size=300_000)
    blob = spool([data[i : i + 7000] for i in range(0, len(data), 7000)], cap=None, memory=4096)
    try:
        import hashlib

        assert blob.sha256 == hashlib.sha256(data).hexdigest()
        assert (blob.size, blob.media_type, blob.ext) == (len(data), "video/mp4", "mp4")
        assert blob.file.read() == data
        assert blob.file._rolled  # type: ignore[attr-defined]  # spilled past 4 KiB
    finally:
        blob.close()


def test_spool_cap_raises_too_large() -> None:
    with pytest.raises(TooLarge) as info:
        spool([b"a" * 1000, b"b" * 1000], cap=1500, memory=1024)
    assert info.value.code == "too-large"


def test_blob_from_file(tmp_path: object) -> None:
    import hashlib
    from pathlib import Path

    path = Path(str(tmp_path)) / "video.bin"
    data = media.mp4(payload_size=200_000, seed=3)
    path.write_bytes(data)
    blob = blob_from_file(path)
    try:
        assert (blob.sha256, blob.size, blob.ext) == (
            hashlib.sha256(data).hexdigest(),
            len(data),
            "mp4",
        )
        assert blob.file.read(8) == data[:8]
    finally:
        blob.close()
    with pytest.raises(TooLarge):
        blob_from_file(path, cap=1000)


def _animated_gif(frames: int) -> bytes:
    images = [Image.new("RGB", (40, 30), (i * 80, 0, 255 - i * 80)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


def test_image_facts() -> None:
    blob = spool([_animated_gif(3)], cap=None, memory=1 << 20)
    try:
        assert image_facts(blob.file, blob.media_type, 10_000) == {
            "width": 40,
            "height": 30,
            "frames": 3,
        }
        # Above the pixel cap: header facts only, nothing decoded.
        assert image_facts(blob.file, blob.media_type, 100) == {"width": 40, "height": 30}
        assert blob.file.tell() == 0
    finally:
        blob.close()
    broken = spool([media.png()[:40]], cap=None, memory=1 << 20)
    try:
        assert image_facts(broken.file, broken.media_type, 10_000) == {}
    finally:
        broken.close()
    assert image_facts(io.BytesIO(b"<svg/>"), "image/svg+xml", 100) == {}
