"""The Store seam: content-addressed media and manifest objects, local or S3."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key, size and last-modified time (epoch seconds)."""

    key: str
    size: int
    mtime: float


class Store(Protocol):
    """Where archived bytes live. Keys are ``/``-separated relative paths.

    ``put`` is create-only: an existing key is never overwritten and ``put`` returns False.
    ``put_bytes(..., overwrite=True)`` is for manifest objects only, which the manifest module
    guards against replacing good data with worse.
    """

    url: str

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, file: IO[bytes], size: int, content_type: str,
            metadata: dict[str, str] | None = None) -> bool: ...

    def put_bytes(self, key: str, data: bytes, content_type: str,
                  metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool: ...

    def get_bytes(self, key: str) -> bytes: ...

    def open(self, key: str) -> IO[bytes]: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def public_url(self, key: str) -> str: ...

    def close(self) -> None: ...
