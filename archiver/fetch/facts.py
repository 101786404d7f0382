"""Image facts (width, height, frames) read from headers, never decoding pixels.

Nothing here allocates memory in proportion to the declared dimensions, so an image that
claims to be 65535 x 65535 costs what its header costs:

- JPEG, PNG, GIF, BMP, ICO and TIFF are opened by Pillow restricted to the sniffed format
  (``Image.open`` reads the header; no other plugin is tried on hostile bytes). Frames are
  counted only when the image is within ``max_pixels``: Pillow's GIF ``n_frames`` skips from
  frame header to frame header without decoding (``_seek(n, update_image=False)``), APNG
  reads its ``acTL`` chunk, TIFF walks its directories.
- A JPEG of the usual shape (SOI, then application, comment, table and restart segments, one
  8-bit baseline, extended or progressive frame header of 1, 3 or 4 components, the scan) is
  read here, segment header by segment header, for what Pillow would say of it (12 us
  instead of 33 here: Pillow parses and keeps every table); anything else goes to Pillow.
- WebP is read here, chunk header by chunk header: Pillow's WebP plugin reads the whole file
  into memory and builds libwebp's animation decoder, which allocates the full canvas.
- AVIF, HEIC and SVG get no facts (their plugins also read the whole file).

A corrupt file just leaves facts out: the bytes themselves are still worth keeping. Pillow's
global ``Image.MAX_IMAGE_PIXELS`` is left alone: it is process-wide and threads share it.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

log = logging.getLogger(__name__)

# Pillow (its import and its common plugins, 10-30 ms of CPU) is loaded by the first image that
# needs it: a run of JPEGs of the usual shape and WebPs never does. Until then nobody could
# have changed its decompression-bomb limit, which is then its default, this value
# (tests/test_facts.py checks it against Pillow's own).
PILLOW_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3

# Sniffed media type -> the one Pillow plugin allowed to open it.
_PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF",
                   "image/bmp": "BMP", "image/x-icon": "ICO", "image/tiff": "TIFF"}
# Formats Pillow reads that can hold several frames; others are one frame by definition.
_ANIMATED = {"GIF", "PNG", "TIFF"}
_WEBP_MAX_CHUNKS = 100_000  # chunk headers read before giving up on counting frames
JPEG_HEAD = 64 * 1024  # a JPEG whose scan starts later than this goes to Pillow
# Segments a usual JPEG has before its scan, that Pillow reads without judging them: APPn
# (Pillow keeps them; what it parses of JFIF, Exif, Adobe and Photoshop blocks never fails
# the open), COM, DHT, DRI. DQT is checked as Pillow checks it; MPF (an MPO) goes to Pillow.
_PLAIN = frozenset({*range(0xE0, 0xF0), 0xFE, 0xC4, 0xDD})
_FRAME = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended, progressive (Huffman)


def image_facts(file: IO[bytes], media_type: str, max_pixels: int) -> dict[str, Any]:
    """{"width", "height", "frames"} as far as they can be read; {} for non-images, SVG or
    unreadable data. Rewinds ``file`` to its start afterwards."""
    try:
        file.seek(0)
        if media_type == "image/webp":
            return webp_facts(file)
        fmt = _PILLOW_FORMATS.get(media_type)
        if fmt is None:
            return {}
        if fmt == "JPEG":
            head = file.read(4096)  # most headers; else up to JPEG_HEAD
            size = jpeg_size(head)
            if size is None and len(head) == 4096:
                file.seek(0)
                size = jpeg_size(file.read(JPEG_HEAD))
            if size is not None:
                width, height = size
                return {"width": width, "height": height,
                        **({"frames": 1} if width * height <= max_pixels else {})}
            file.seek(0)
        return _pillow_facts(file, fmt, max_pixels)
    except Exception as exc:  # Pillow raises many types (and bomb warnings under -W error)
        log.debug("no image facts: %s", exc)
        return {}
    finally:
        file.seek(0)


def _pillow_facts(file: IO[bytes], fmt: str, max_pixels: int) -> dict[str, Any]:
    from PIL import Image

    facts: dict[str, Any] = {}
    with Image.open(file, formats=[fmt]) as im:
        width, height = im.size
        facts["width"], facts["height"] = int(width), int(height)
        if width * height <= max_pixels:
            facts["frames"] = int(getattr(im, "n_frames", 1)) if fmt in _ANIMATED else 1
    return facts


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG of the usual shape (module docstring) from its first bytes,
    as Pillow's JPEG plugin reads them; None for anything else (Pillow then decides)."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    pos, size = 2, None
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        if data[pos] != 0xFF:
            return None  # padding or junk between segments: Pillow's loop skips it
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return None
        if marker == 0xDA:  # the scan: the header ends
            return size
        if marker in _PLAIN:  # the bytes of the few that _unusual reads, no copy of others
            if marker in _READ and _unusual(marker, data[pos + 4:end]):
                return None
        elif marker in _FRAME:
            body = data[pos + 4:end]
            if size is not None or len(body) < 6 or body[0] != 8 or body[5] not in (1, 3, 4):
                return None
            size = int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big")
            limit = _pillow_limit()
            if not size[0] or not size[1] or (limit is not None and size[0] * size[1] > limit):
                return None  # Pillow refuses it, or warns (an error under -W error)
        elif marker == 0xDB:
            body = data[pos + 4:end]
            while body:  # each table: a precision byte, then 64 values of 1 or 2 bytes
                table = 65 if body[0] < 16 else 129
                if len(body) < table:
                    return None
                body = body[table:]
        else:
            return None
        pos = end
    return None


def _pillow_limit() -> int | None:
    """Pillow's ``Image.MAX_IMAGE_PIXELS`` as this process has it (its default while Pillow
    is not loaded, or not yet all of it)."""
    image = sys.modules.get("PIL.Image")
    limit: int | None = getattr(image, "MAX_IMAGE_PIXELS", PILLOW_MAX_IMAGE_PIXELS)
    return limit


_READ = frozenset({0xE0, 0xE2, 0xED, 0xEE})  # the markers _unusual can judge unusual


def _unusual(marker: int, body: bytes) -> bool:
    """Application segments that Pillow reads further, where it can fail or turn the image
    into an MPO: short JFIF and Adobe blocks and ICC fragments, Photoshop blocks, MPF."""
    if marker == 0xE2:
        return body.startswith(b"MPF\0") or (body.startswith(b"ICC_PROFILE\0")
                                              and len(body) < 14)
    return (marker == 0xE0 and body.startswith(b"JFIF") and len(body) < 7) \
        or (marker == 0xEE and body.startswith(b"Adobe") and len(body) < 7) \
        or (marker == 0xED and body.startswith(b"Photoshop 3.0\0"))


def webp_facts(file: IO[bytes]) -> dict[str, Any]:
    """Width, height and frame count of a WebP from its RIFF chunk headers (``VP8X`` canvas,
    ``VP8 ``/``VP8L`` bitstream header, one ``ANMF`` chunk per frame); {} when malformed."""
    head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return {}
    facts: dict[str, Any] = {}
    animated = False
    frames = 0
    for _ in range(_WEBP_MAX_CHUNKS):
        header = file.read(8)
        if len(header) < 8:
            break
        fourcc, size = header[:4], int.from_bytes(header[4:], "little")
        body = file.read(min(size, 10))
        if fourcc == b"VP8X" and len(body) >= 10:
            animated = bool(body[0] & 0x02)
            facts["width"] = int.from_bytes(body[4:7], "little") + 1
            facts["height"] = int.from_bytes(body[7:10], "little") + 1
        elif fourcc == b"VP8 " and "width" not in facts and len(body) >= 10 \
                and body[3:6] == b"\x9d\x01\x2a":
            facts["width"] = int.from_bytes(body[6:8], "little") & 0x3FFF
            facts["height"] = int.from_bytes(body[8:10], "little") & 0x3FFF
        elif fourcc == b"VP8L" and "width" not in facts and len(body) >= 5 and body[0] == 0x2F:
            bits = int.from_bytes(body[1:5], "little")
            facts["width"] = (bits & 0x3FFF) + 1
            facts["height"] = ((bits >> 14) & 0x3FFF) + 1
        elif fourcc == b"ANMF":
            frames += 1
        file.seek(size + (size & 1) - len(body), 1)  # chunks are padded to an even size
    else:
        return facts  # too many chunks to count: dimensions only
    if "width" in facts:
        facts["frames"] = frames if animated and frames else 1
    return facts
