"""archiver's own copies: a URL that points at an object of the archive is not a reference.

A rewritten article points at ``<base>/<key>``; scanning it again must not take those copies
for new media. A URL is an archived copy when it lies under one of the archive's public bases
(``store.public_base_url``), or when its path ends with a content address,
``media/<sha256[:2]>/<sha256>.<ext>``: every URL form of the store's objects ends so (S3
virtual-host or path style, an endpoint, a CDN, a ``file://`` path), and a digest sharded by
its own first two hex digits is not what other sites name their files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

ARCHIVED_COPY = "archived-copy"  # the Skipped reason

_CONTENT_ADDRESS = re.compile(r"/media/([0-9a-f]{2})/([0-9a-f]{64})\.[a-z0-9]{1,10}\Z")


def is_archived_copy(url: str, bases: Sequence[str] = ()) -> bool:
    """Whether ``url`` (absolute, or a site path like ``/archive/...``) points at one of the
    archive's own objects (see the module docstring)."""
    text = url.strip()
    if any(_under(text, base) for base in bases if base):
        return True
    try:
        path = urlsplit(text).path
    except ValueError:
        return False
    match = _CONTENT_ADDRESS.search(path)
    return match is not None and match.group(2).startswith(match.group(1))


def _under(url: str, base: str) -> bool:
    """``url`` lies under ``base`` (scheme and host compared case-insensitively)."""
    prefix = base.rstrip("/") + "/"
    if prefix.startswith("/"):
        return url.startswith(prefix)
    scheme_host = prefix.split("/", 3)[:3]  # "https:", "", "host"
    head = "/".join(scheme_host)
    return url[:len(head)].lower() == head.lower() and url[len(head):].startswith(
        prefix[len(head):])
