"""Stores: a local directory (the embedded default) and S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from archiver.errors import ConfigError
from archiver.settings import StoreSettings
from archiver.store.base import ObjectInfo, Store
from archiver.store.keys import media_key

__all__ = ["ObjectInfo", "Store", "media_key", "open_store"]


def open_store(settings: StoreSettings) -> Store:
    """The store ``settings.url`` names: a path or ``file://`` URL is a LocalStore,
    ``s3://bucket/prefix`` an S3Store (boto3 imported only then). Raises ConfigError for any
    other scheme. The caller closes it: ``with open_store(settings) as store:``."""
    url = settings.url
    if not url:
        raise ConfigError("empty store URL")
    parts = urlsplit(url)
    # "C:\\..." and plain relative paths have no "://"; only real URLs carry a scheme here.
    if "://" not in url:
        from archiver.store.local import LocalStore

        return LocalStore(Path(url), url=url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file:// store on another host is not supported: {url!r}")
        from archiver.store.local import LocalStore

        return LocalStore(Path(unquote(parts.path)), url=url)
    if parts.scheme == "s3":
        from archiver.store.s3 import S3Store

        return S3Store(url, settings)
    raise ConfigError(f"unsupported store URL {url!r} (use a path, file:// or s3://bucket/prefix)")
