"""Real media bytes, made with Pillow (images, GIFs) or by hand (minimal MP4/WebM boxes)."""

from __future__ import annotations

import io
import struct
import wave

from PIL import Image


def jpeg(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def png(width: int = 32, height: int = 32, color: tuple[int, int, int] = (10, 200, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def gif(width: int = 40, height: int = 30, frames: int = 3) -> bytes:
    images = [Image.new("RGB", (width, height), (i * 60 % 256, 255 - i * 60 % 256, 90))
              for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


def webp(width: int = 20, height: int = 20) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buf, "WEBP")
    return buf.getvalue()


def mp4(payload_size: int = 4096, seed: int = 0) -> bytes:
    """A minimal ISO-BMFF file (ftyp + mdat) that sniffs as MP4; not playable, not needed."""
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    ftyp = struct.pack(">I", len(ftyp) + 4) + ftyp
    payload = bytes((i * 31 + seed) & 0xFF for i in range(payload_size))
    mdat = struct.pack(">I", len(payload) + 8) + b"mdat" + payload
    return ftyp + mdat


def ts_segment(index: int, packets: int = 40) -> bytes:
    """MPEG-TS-looking bytes: 188-byte packets with the 0x47 sync byte (enough to sniff)."""
    out = bytearray()
    for p in range(packets):
        payload = bytes(((index * 7 + p + i) & 0xFF) for i in range(187))
        out += b"\x47" + payload
    return bytes(out)


HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>Error 1020</title></head>"
    b"<body><h1>Access denied</h1></body></html>"
)


def wav(frames: int = 80) -> bytes:
    """A real WAV file (the standard library's writer): mono 16-bit silence at 8 kHz."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * frames)
    return out.getvalue()


def ogg(packet: bytes, padding: int = 0) -> bytes:
    """An Ogg page (RFC 3533) carrying a codec's first header packet (``\\x01vorbis``,
    ``OpusHead``, ``\\x80theora``), then ``padding`` zero bytes."""
    header = b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 8
    return header + bytes([1, len(packet)]) + packet + b"\x00" * padding
