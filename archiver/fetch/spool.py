"""Stream, hash, cap: bytes go through sha256 into a spooled temporary file (warcio style).

Small bodies stay in memory (a plain BytesIO: what reads them, Pillow's header parser and the
store, get its bytes without a wrapper's Python call per read), large ones spill to an
unnamed temporary file at ``spool_memory`` bytes, so memory stays bounded whatever the size of
the asset. The byte cap is enforced while writing, on the
bytes actually received (decoded bytes for a Content-Encoding, see decode.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from typing import IO

from archiver.errors import TooLarge
from archiver.fetch.base import Blob
from archiver.fetch.sniff import HEAD_BYTES, sniff

CHUNK = 64 * 1024
UNKNOWN = ("application/octet-stream", "bin")


class Spooler:
    """Accumulates one body: ``write`` chunks, then ``finish`` for a Blob (or ``discard``).
    In memory the chunks are kept as received and joined once at the end: a body read in one
    chunk (most, with wire.py's reads) becomes its Blob's buffer without a copy, where a
    BytesIO written to copied it into a new allocation (fresh pages, faulted in one by one)."""

    def __init__(self, cap: int | None, memory: int) -> None:
        self.cap = cap
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()
        self._memory = memory
        self._chunks: list[bytes] | None = []  # None once spilled to ``_file``
        self._file: IO[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``; raises TooLarge as soon as the total passes the cap."""
        if not chunk:
            return
        self.size += len(chunk)
        if self.cap is not None and self.size > self.cap:
            raise TooLarge(f"body exceeds the {self.cap}-byte cap", cap=self.cap)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self._hash.update(chunk)
        if self._chunks is None:
            assert self._file is not None
            self._file.write(chunk)
            return
        self._chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
        if self.size > self._memory:
            self._spill(self._chunks)

    def limit(self, cap: int) -> None:
        """Hold the body to ``cap`` from now on (a smaller one once its type is known); raises
        TooLarge when it is past it already."""
        self.cap = cap
        if self.size > cap:
            raise TooLarge(f"body exceeds the {cap}-byte cap", cap=cap)

    def _spill(self, chunks: list[bytes]) -> None:
        """Move what is held in memory to a temporary file (no name: nothing left behind)."""
        disk = tempfile.TemporaryFile(prefix="archiver-")  # noqa: SIM115 - owned by Blob
        try:
            for chunk in chunks:
                disk.write(chunk)
        except BaseException:
            disk.close()
            raise
        self._file, self._chunks = disk, None

    def finish(self) -> Blob:
        """The Blob, rewound to its start, typed by sniffing (octet-stream when unknown)."""
        if self._chunks is not None:
            file: IO[bytes] = io.BytesIO(b"".join(self._chunks))  # one chunk: no copy
            self._chunks = None
        else:
            assert self._file is not None
            file = self._file
            file.flush()
            file.seek(0)
        media_type, ext = sniff(self.head) or UNKNOWN
        return Blob(
            file=file,
            sha256=self._hash.hexdigest(),
            size=self.size,
            media_type=media_type,
            ext=ext,
        )

    def discard(self) -> None:
        self._chunks = None
        if self._file is not None:
            self._file.close()


def blob_from_file(path: str | os.PathLike[str], cap: int | None = None) -> Blob:
    """A Blob over an existing file (e.g. yt-dlp output): hashed in chunks, sniffed, opened
    for reading at its start. The caller keeps ownership of the path; closing the Blob closes
    only the handle. Raises TooLarge when the file is larger than ``cap``."""
    size = os.path.getsize(path)
    if cap is not None and size > cap:
        raise TooLarge(f"{size} bytes exceeds the {cap}-byte cap", cap=cap, size=size)
    digest = hashlib.sha256()
    fh = open(path, "rb")  # noqa: SIM115 - returned inside the Blob
    try:
        head = fh.read(HEAD_BYTES)
        digest.update(head)
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    media_type, ext = sniff(head) or UNKNOWN
    return Blob(file=fh, sha256=digest.hexdigest(), size=size, media_type=media_type, ext=ext)
