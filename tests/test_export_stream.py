"""The export's plumbing on its own: gzip members written by the output thread (stored ones
built by hand, deflated ones by zlib), a write error surfacing in the producer, and objects
read from a real local store, verified once (small) or streamed (large)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import zlib
from pathlib import Path

import pytest

from archiver.export.objects import SMALL, Corrupt, read_verified
from archiver.export.output import HANDOFF, Member, Output
from archiver.store.local import LocalStore


def _members(data: bytes) -> list[bytes]:
    out = []
    while data:
        z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out.append(z.decompress(data) + z.flush())
        assert z.eof
        data = z.unused_data
    return out


def test_members_decode_as_one_gzip_member_each() -> None:
    payload = os.urandom(3 * 65535 + 17)  # several stored blocks, the last one partial
    text = b"WARC/1.1\r\n" * 2000
    sink = io.BytesIO()
    with Output(sink) as out:
        stored = Member(out, 0, len(payload))
        for part in (b"headers\r\n", payload[:100_000], payload[100_000:], b"\r\n\r\n"):
            stored.write(part)
        stored.finish()
        Member(out, 0, 0).finish()  # an empty stored member is still a member
        deflated = Member(out, 6, len(text))
        deflated.write(text)
        deflated.finish()
    data = sink.getvalue()
    assert out.position == len(data)
    assert _members(data) == [b"headers\r\n" + payload + b"\r\n\r\n", b"", text]
    assert len(data) < len(payload) + 2 * len(text) // 10 + 1000  # text deflated, not stored


class _Full:
    """A file that fills up after its first write."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)


def test_a_failed_write_surfaces_in_the_producer() -> None:
    out = Output(_Full())
    with pytest.raises(OSError, match="No space"):
        for _ in range(64):  # far more than the writing thread may hold back
            out.write(b"x" * HANDOFF)
        out.close()
    out.__exit__(OSError, OSError(), None)  # the thread is stopped either way


def test_objects_are_verified_whole_or_streamed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    small, large = os.urandom(70_000), os.urandom(SMALL + 1)
    for name, data in (("small", small), ("large", large)):
        store.put_bytes(f"media/{name}.bin", data, "application/octet-stream")
    prefix = b"HTTP/1.1 200 OK\r\n\r\n"

    one = read_verified(store, "media/small.bin", hashlib.sha256(small).hexdigest(), prefix,
                        len(small))
    assert one.data == small and one.file is None  # read once, held for the write
    assert one.block_digest == "sha256:" + hashlib.sha256(prefix + small).hexdigest()

    big = read_verified(store, "media/large.bin", hashlib.sha256(large).hexdigest(), prefix,
                        len(large))
    try:
        assert big.data is None and big.file is not None  # streamed, read again to write
        assert big.stream().read() == large
        assert big.block_digest == "sha256:" + hashlib.sha256(prefix + large).hexdigest()
    finally:
        big.close()

    # a record that understates the size still gets the whole object checked
    with pytest.raises(Corrupt):
        read_verified(store, "media/large.bin", hashlib.sha256(large[:10]).hexdigest(), b"", 10)
    with pytest.raises(Corrupt):
        read_verified(store, "media/small.bin", "0" * 64, b"", len(small))
