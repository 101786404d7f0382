"""The bytes of an export on their way out: one gzip member per record, written by a thread of
their own so that the writes (and, in a WACZ, the file's sha256 and the ZIP's CRC) run on the
second core while the export builds the next records. Given the file descriptor underneath,
the thread also hands what is written to the disk as it goes (``posix_fadvise`` DONTNEED starts
the writeback of those pages without waiting for it), so the fsync that ends the export has
little left to wait for, and a large export does not crowd out the page cache.

Members of already-compressed payloads are stored, not deflated (RFC 1951 stored blocks, with
the gzip header and CRC-32 trailer of RFC 1952): zlib at level 0 produces the same bytes but
copies every payload three times on the way, which made it the costliest step of the export;
here the payload is checksummed once and written as it is.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import zlib
from types import TracebackType
from typing import Protocol

HANDOFF = 1024 * 1024  # bytes gathered before they go to the writing thread
PENDING = 4  # handoffs waiting for the writing thread at most (bounded memory)
GATHER = 256 * 1024  # bytes of a deflated member gathered before they go through zlib
WRITEBACK = 32 * 1024 * 1024  # bytes written between two starts of their writeback
_STORED_BLOCK = 0xFFFF  # the largest stored deflate block
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime
_BLOCK = struct.Struct("<BHH")
_TRAILER = struct.Struct("<II")


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Output:
    """Writes to ``out`` from a thread of its own, in order; ``position`` counts the bytes
    written so far (record offsets for the index). ``fd``: the file under ``out``, whose
    writeback starts as the export goes. ``close`` waits for the last write and raises what a
    write raised; an error also surfaces at the next ``write``. Used as a context manager:
    leaving on an exception stops the thread without writing the rest."""

    def __init__(self, out: Writable, fd: int | None = None) -> None:
        self.out = out
        self.position = 0
        self._fd = fd if hasattr(os, "posix_fadvise") else None
        self._parts: list[bytes | memoryview] = []
        self._gathered = 0
        self._queue: queue.Queue[list[bytes | memoryview] | None] = queue.Queue(PENDING)
        self._error: BaseException | None = None
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="export-write", daemon=True)
        self._thread.start()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self._parts.clear()
            self._failed.set()
            self._stop()

    def write(self, data: bytes | memoryview) -> None:
        if data:
            self._parts.append(data)
            self._gathered += len(data)
            self.position += len(data)
            if self._gathered >= HANDOFF:
                self._handoff()

    def write_parts(self, parts: list[bytes | memoryview], size: int) -> None:
        """``write`` each of ``parts`` (``size`` bytes in all), in one call."""
        self._parts += parts
        self._gathered += size
        self.position += size
        if self._gathered >= HANDOFF:
            self._handoff()

    def close(self) -> None:
        """Write what is gathered, wait for the writing thread; raise its error if any."""
        if self._thread.is_alive():
            self._handoff()
            self._stop()
        self._check()

    def _handoff(self) -> None:
        self._check()
        if self._parts:
            self._queue.put(self._parts)  # joined by the writing thread, off this one
            self._parts = []
            self._gathered = 0

    def _stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        unsynced = synced = 0
        while (parts := self._queue.get()) is not None:
            if self._error is not None or self._failed.is_set():
                continue  # keep draining so that the producer never blocks
            try:
                data = b"".join(parts)
                self.out.write(data)
                unsynced += len(data)
                if self._fd is not None and unsynced >= WRITEBACK:
                    end = os.lseek(self._fd, 0, os.SEEK_CUR)
                    os.posix_fadvise(self._fd, synced, end - synced, os.POSIX_FADV_DONTNEED)
                    synced, unsynced = end, 0
            except BaseException as exc:  # handed to the producer
                self._error = exc


class Member:
    """One gzip member around one record of about ``size`` bytes: deflated at ``level``,
    stored when ``level`` is 0, plain bytes when ``level`` is None (an uncompressed WARC).

    What is deflated is gathered and goes through zlib GATHER bytes at a time: a record's
    headers come in several small writes, and each call into zlib hands the GIL over."""

    def __init__(self, out: Output, level: int | None, size: int) -> None:
        self._out = out
        self._stored = level == 0
        self._z = None if level is None or level == 0 else _deflater(level, size)
        self._gathered: list[bytes] = []
        self._gathered_size = 0
        self._crc = 0
        self._size = 0
        if self._stored:
            out.write(_GZIP_HEADER)

    def write(self, data: bytes) -> None:
        if self._stored:
            self._write_stored(data)
        elif self._z is not None:
            self._gathered.append(data)
            self._gathered_size += len(data)
            if self._gathered_size >= GATHER:
                self._deflate()
        else:
            self._out.write(data)

    def flush(self) -> None:
        """warcio flushes after each record; the member is only ended by ``finish``."""

    def finish(self) -> None:
        if self._stored:
            self._out.write(_BLOCK.pack(1, 0, 0xFFFF))  # the final block, empty
            self._out.write(_TRAILER.pack(self._crc, self._size & 0xFFFFFFFF))
        elif self._z is not None:
            self._deflate()
            self._out.write(self._z.flush())

    def _deflate(self) -> None:
        assert self._z is not None
        if self._gathered:
            self._out.write(self._z.compress(b"".join(self._gathered)))
            self._gathered.clear()
            self._gathered_size = 0

    def _write_stored(self, data: bytes) -> None:  # RFC 1951 3.2.4
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        view = memoryview(data)
        parts: list[bytes | memoryview] = []
        for start in range(0, len(view), _STORED_BLOCK):
            block = view[start:start + _STORED_BLOCK]
            parts += (_BLOCK.pack(0, len(block), 0xFFFF ^ len(block)), block)
        self._out.write_parts(parts, len(data) + 5 * (len(parts) // 2))


def _deflater(level: int, size: int) -> zlib._Compress:
    """A gzip deflater with a window no larger than the record: zlib's default (32 KB window
    and 128 KB of hash table, cleared for every member) takes six times longer to set up than
    a request record takes to compress."""
    bits = min(zlib.MAX_WBITS, max(9, size.bit_length()))
    return zlib.compressobj(level, zlib.DEFLATED, bits | 16, max(1, bits - 7))
