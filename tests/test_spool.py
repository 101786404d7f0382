"""Stream, hash, cap: the Spooler behind every HTTP fetch, and Blobs over finished files."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from archiver.errors import TooLarge
from archiver.fetch.spool import Spooler, blob_from_file
from tests.support import media


def test_spooler_hashes_counts_sniffs_and_spills_to_disk() -> None:
    data = media.mp4(payload_size=300_000)
    spooler = Spooler(cap=None, memory=4096)
    for i in range(0, len(data), 7000):
        spooler.write(data[i : i + 7000])
    assert spooler.head == data[: len(spooler.head)] and spooler.size == len(data)
    blob = spooler.finish()
    try:
        assert blob.sha256 == hashlib.sha256(data).hexdigest()
        assert (blob.size, blob.media_type, blob.ext) == (len(data), "video/mp4", "mp4")
        assert blob.file.read() == data
        assert not isinstance(blob.file, io.BytesIO)  # spilled past 4 KiB
        assert blob.file.fileno() >= 0
    finally:
        blob.close()


def test_spooler_cap_raises_too_large_as_soon_as_it_is_passed() -> None:
    spooler = Spooler(cap=1500, memory=1024)
    spooler.write(b"a" * 1000)
    with pytest.raises(TooLarge) as info:
        spooler.write(b"b" * 1000)
    assert info.value.code == "too-large" and spooler.size == 2000
    spooler.discard()


def test_a_smaller_cap_holds_from_when_it_is_set() -> None:
    spooler = Spooler(cap=5000, memory=1024)
    spooler.write(b"a" * 1000)
    spooler.limit(1500)  # the body's type is known: its kind's cap from now on
    with pytest.raises(TooLarge):
        spooler.write(b"b" * 1000)
    spooler.discard()
    past = Spooler(cap=5000, memory=1024)
    past.write(b"a" * 2000)
    with pytest.raises(TooLarge) as info:
        past.limit(1500)  # already past it
    assert info.value.details["cap"] == 1500
    past.discard()


def test_unknown_bytes_are_octet_stream() -> None:
    spooler = Spooler(cap=None, memory=1024)
    spooler.write(b"\x00\x01 not a known format")
    blob = spooler.finish()
    try:
        assert (blob.media_type, blob.ext) == ("application/octet-stream", "bin")
    finally:
        blob.close()


def test_blob_from_file(tmp_path: Path) -> None:
    path = tmp_path / "video.bin"
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
