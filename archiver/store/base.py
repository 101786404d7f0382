"""The Store seam: content-addressed media and manifest objects, local or S3."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol, Self, TypeVar
from urllib.parse import quote

from archiver.errors import StoreUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key, size and last-modified time (epoch seconds).

    ``etag`` is a version token: the server's entity tag on S3 (the MD5 of single-part
    objects), inode and mtime for a local directory;
    ``content_type`` and ``metadata`` are filled by ``head`` only (a listing does not carry
    them).
    """

    key: str
    size: int
    mtime: float
    etag: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    """Where archived bytes live. Keys are ``/``-separated relative paths.

    ``put`` is create-only: an existing key is never overwritten and ``put`` returns False.
    ``put_bytes(..., overwrite=True)`` is for manifest objects only, which the manifest module
    guards against replacing good data with worse.

    Metadata values are made ASCII (non-ASCII and control characters percent-encoded, values
    capped) by both stores, so ``head`` returns the same metadata from either.
    ``get_bytes``/``open`` raise ObjectMissing for a missing key; ``head`` returns None.
    ``list`` yields every object whose key starts with ``prefix``, in no promised order.
    Keys are checked by ``keys.check_key`` (StoreRejected when unsafe). Other failures raise
    StoreError (retryable). Implementations are safe to share between threads, and are
    context managers: ``with open_store(settings.store) as store:``.
    """

    url: str

    def check(self) -> None:
        """Raise the store's error (naming the bucket or directory) unless it is there and
        answers; workers run it at startup so a misconfigured store is seen at once."""
        ...

    def ready_for_writes(self) -> None:
        """Raise the store's last refusal of a write (StoreFull, StoreReadOnly) while that write
        would still be refused: called before a download whose bytes the store must take, so
        that nothing is fetched only to be thrown away. Nothing to do on a store that has not
        refused one (and on S3, whose outages show on the reads before any download)."""
        ...

    def discard_leftovers(self) -> int:
        """Remove what writers that died left behind (a local store's hidden temporary files;
        nothing on S3, where an unfinished PUT leaves nothing); how many. Run after a crash."""
        ...

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, file: IO[bytes], size: int, content_type: str,
            metadata: dict[str, str] | None = None) -> bool: ...

    def put_bytes(self, key: str, data: bytes, content_type: str,
                  metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool: ...

    def get_bytes(self, key: str) -> bytes: ...

    def open(self, key: str) -> IO[bytes]: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove these objects (missing ones are fine). Only the manifest's change markers
        and finished batches' journals are ever deleted: media objects and records never
        are."""
        ...

    def public_url(self, key: str) -> str: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Closing:
    """``with store:`` closes the store on the way out: whoever opens a store closes it."""

    def close(self) -> None:
        """Release the store's connections (nothing to release by default)."""

    def ready_for_writes(self) -> None:
        """See ``Store.ready_for_writes``: nothing refused, nothing to raise, by default."""

    def discard_leftovers(self) -> int:
        """See ``Store.discard_leftovers``: nothing left behind, by default."""
        return 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
_CLEAN_NAME = re.compile(r"[a-z0-9-]+")
MAX_METADATA_VALUE = 1024
MAX_METADATA_TOTAL = 1900  # S3 allows 2 KB of user metadata, names and values together


def clean_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Metadata both stores can keep: lowercase ``[a-z0-9-]`` names, printable ASCII values
    (anything else percent-encoded; ASCII input is unchanged, so encoding twice is harmless),
    each value and the total capped to fit S3's 2 KB limit."""
    out: dict[str, str] = {}
    total = 0
    for name, value in sorted((metadata or {}).items()):
        clean_name = name.lower()
        if not _CLEAN_NAME.fullmatch(clean_name):
            clean_name = "".join(c for c in clean_name
                                 if c.isascii() and (c.isalnum() or c == "-"))
        if not clean_name:
            continue
        text = str(value)
        # Printable ASCII is what quote() would leave as it is: no call (the common case).
        clean_value = (text if text.isascii() and text.isprintable()
                       else quote(text, safe=_PRINTABLE))[:MAX_METADATA_VALUE]
        room = MAX_METADATA_TOTAL - total - len(clean_name)
        if room <= 0:
            break
        clean_value = clean_value[:room]
        out[clean_name] = clean_value
        total += len(clean_name) + len(clean_value)
    return out


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` of this host is running (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def through_outages(call: Callable[[], T], patience: float) -> T:
    """``call()``, tried again with backoff while the store does not answer (StoreUnavailable),
    for up to ``patience`` seconds (an enqueuer's ``celery.outage_wait``)."""
    deadline = time.monotonic() + patience
    pause = 0.5
    while True:
        try:
            return call()
        except StoreUnavailable:
            if time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
