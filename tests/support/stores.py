"""Real stores for tests: a LocalStore in a temporary directory, an S3Store on a fresh bucket
of the moto server, and a counting wrapper (our own Store, not a boto3 mock) for tests that
check how many reads the manifest makes."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from archiver.settings import MiB, StoreSettings
from archiver.store.base import Closing, ObjectInfo, Store
from archiver.store.local import LocalStore
from archiver.store.s3 import S3Store

# Small enough that a test's 11 MiB file goes up in three parts (5 MiB is S3's minimum part).
SMALL_MULTIPART = {"multipart_threshold": 6 * MiB, "multipart_chunksize": 5 * MiB}


def s3_settings(endpoint: str, **overrides: Any) -> StoreSettings:
    values: dict[str, Any] = {"endpoint_url": endpoint, "region": "us-east-1",
                              "addressing_style": "path", **SMALL_MULTIPART}
    values.update(overrides)
    return StoreSettings(**values)


def new_s3_store(endpoint: str, prefix: str = "archive", **overrides: Any) -> S3Store:
    """An S3Store on a bucket of its own (created here), under ``prefix``."""
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    store = S3Store(f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
                    s3_settings(endpoint, **overrides))
    store.ensure_bucket()
    return store


def new_local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "archive")


class CountingStore(Closing):
    """Delegates to a real store and counts calls by operation, so tests can assert that the
    manifest plans with one index GET and one LIST instead of a GET per record."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()
        self.gets: list[str] = []
        self._lock = threading.Lock()

    def _count(self, op: str, key: str = "") -> None:
        with self._lock:
            self.calls[op] += 1
            if op == "get":
                self.gets.append(key)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.gets.clear()

    def check(self) -> None:
        self.inner.check()

    def ready_for_writes(self) -> None:
        self.inner.ready_for_writes()

    def discard_leftovers(self) -> int:
        return self.inner.discard_leftovers()

    def exists(self, key: str) -> bool:
        self._count("exists", key)
        return self.inner.exists(key)

    def put(self, key: str, file: IO[bytes], size: int, content_type: str,
            metadata: dict[str, str] | None = None) -> bool:
        self._count("put", key)
        return self.inner.put(key, file, size, content_type, metadata)

    def put_bytes(self, key: str, data: bytes, content_type: str,
                  metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool:
        self._count("put", key)
        return self.inner.put_bytes(key, data, content_type, metadata, overwrite)

    def delete(self, keys: Iterable[str]) -> None:
        self._count("delete")
        self.inner.delete(keys)

    def get_bytes(self, key: str) -> bytes:
        self._count("get", key)
        return self.inner.get_bytes(key)

    def open(self, key: str) -> IO[bytes]:
        self._count("get", key)
        return self.inner.open(key)

    def head(self, key: str) -> ObjectInfo | None:
        self._count("head", key)
        return self.inner.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._count("list", prefix)
        return self.inner.list(prefix)

    def public_url(self, key: str) -> str:
        return self.inner.public_url(key)

    def close(self) -> None:
        self.inner.close()
