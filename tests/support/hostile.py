"""Hostile origin behaviours for the fault tests and ``bench/chaos.py``: compression bombs,
images declaring huge dimensions, and the misbehaving responses an origin or proxy sends
(429/503 with Retry-After, slow drip, truncation, an HTML page with status 200, redirect
loops). Each is a ``Response`` for ``OriginServer.add`` or the bytes of one."""

from __future__ import annotations

import functools
import gzip
import struct
import zlib

from tests.support import media
from tests.support.origin import Response

GiB = 1024 * 1024 * 1024
_ZEROS = bytes(1024 * 1024)


@functools.cache
def gzip_zeros(decoded: int, prefix: bytes = b"") -> bytes:
    """One gzip member decoding to ``prefix`` followed by zeros, ``decoded`` bytes in all
    (a GiB of zeros is about 1 MB of gzip). Once the window is all zeros, every further MiB
    of zeros compresses to the same bytes, so that piece is compressed once and repeated;
    header and trailer are written by hand around the raw deflate stream."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = decoded - len(prefix)
    whole, rest = divmod(zeros, len(_ZEROS))
    out = [packer.compress(prefix + _ZEROS[:rest]), packer.flush(zlib.Z_SYNC_FLUSH)]
    crc = zlib.crc32(_ZEROS[:rest], zlib.crc32(prefix))
    if whole:
        warm = packer.compress(_ZEROS) + packer.flush(zlib.Z_SYNC_FLUSH)
        piece = packer.compress(_ZEROS) + packer.flush(zlib.Z_SYNC_FLUSH)
        out += [warm, piece * (whole - 1)]
        for _ in range(whole):
            crc = zlib.crc32(_ZEROS, crc)
    out.append(packer.flush())
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, decoded & 0xFFFFFFFF)
    return header + b"".join(out) + trailer


def media_prefix() -> bytes:
    """A real JPEG start, so a bomb sniffs as media and is read until the byte cap stops it."""
    return media.jpeg(8, 8)[:-2]  # without its end marker: the zeros follow as "scan data"


def stacked_gzip_bomb(decoded: int = GiB) -> Response:
    """``Content-Encoding: gzip, gzip``: a few KB on the wire, ``decoded`` bytes of JPEG
    start and zeros after both layers."""
    inner = gzip_zeros(decoded, media_prefix())
    return Response(body=gzip.compress(inner, 9), content_type="image/jpeg",
                    headers={"Content-Encoding": "gzip, gzip"})


def single_gzip_bomb(decoded: int = GiB) -> Response:
    """One gzip layer: about a MB on the wire, ``decoded`` bytes decoded."""
    return Response(body=gzip_zeros(decoded, media_prefix()), content_type="image/jpeg",
                    headers={"Content-Encoding": "gzip"})


def triple_gzip(data: bytes) -> Response:
    """Three layers: more than archiver accepts, refused whatever the body."""
    body = gzip.compress(gzip.compress(gzip.compress(data)))
    return Response(body=body, content_type="image/png",
                    headers={"Content-Encoding": "gzip, gzip, gzip"})


def huge_gif(width: int = 65535, height: int = 65535, frames: int = 50) -> bytes:
    """A GIF whose screen and every frame declare ``width`` x ``height`` pixels, each frame
    holding a few bytes of LZW data."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)
    frame = (b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
             + b"\x02\x02\x4c\x01\x00")  # min code size 2, one 2-byte block, terminator
    return head + frame * frames + b"\x3b"


def huge_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def huge_webp(width: int = 16384, height: int = 16384, frames: int = 3) -> bytes:
    """An animated WebP whose VP8X canvas declares ``width`` x ``height`` (libwebp's animation
    decoder would allocate that canvas), with ``frames`` empty ANMF chunks."""
    vp8x = bytes([0x02, 0, 0, 0]) + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    body = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    body += b"ANIM" + struct.pack("<I", 6) + bytes(6)
    for _ in range(frames):
        body += b"ANMF" + struct.pack("<I", 16) + bytes(16)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def huge_jpeg(width: int = 65500, height: int = 65500) -> bytes:
    """A real small JPEG with its frame header rewritten to declare ``width`` x ``height``."""
    data = bytearray(media.jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def as_image(data: bytes) -> Response:
    return Response(body=data, content_type="image/jpeg")


def retry_after(status: int, seconds: int, then: bytes) -> list[Response]:
    """``status`` (429 or 503) with Retry-After once, then the media."""
    return [Response(status=status, body=b"slow down", content_type="text/plain",
                     headers={"Retry-After": str(seconds)}),
            Response(body=then, content_type=None)]


def slow(body: bytes, seconds: float = 2.0) -> Response:
    """The body dripped in 8 pieces over about ``seconds``."""
    piece = max(1, len(body) // 8)
    return Response(body=body, content_type=None, chunk=piece, drip=seconds / 8)


def truncated_then(body: bytes) -> list[Response]:
    """Half the body then a closed connection, once; then the whole body."""
    return [Response(body=body, content_type=None, truncate_to=len(body) // 2),
            Response(body=body, content_type=None)]


def html_200() -> Response:
    """An error page served with status 200, as proxies and CDNs do."""
    return Response(body=media.HTML_ERROR_PAGE, content_type="text/html")


def redirect_loop(path: str) -> Response:
    """A redirect to itself, forever."""
    return Response(status=302, redirect=path)

