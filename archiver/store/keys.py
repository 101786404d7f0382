"""Object keys: content addresses for media, safe relative keys for everything else."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from archiver.errors import StoreRejected

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXT = re.compile(r"[a-z0-9]{1,10}")
# Characters kept verbatim in an encoded key segment; everything else is percent-encoded.
_SEGMENT_SAFE = "-_~."
MAX_KEY_BYTES = 900  # S3 allows 1024; leave room for a store prefix
MAX_SEGMENT_BYTES = 200  # most filesystems allow 255 bytes per name; leave room for suffixes


def media_key(sha256: str, ext: str) -> str:
    """``media/<sha256[:2]>/<sha256>.<ext>``: the content address of some media bytes.

    Raises StoreRejected when the digest is not lowercase hex sha256 or ext is not a short
    lowercase alphanumeric extension (it comes from the sniffer, never from the URL).
    """
    ext = ext.lstrip(".").lower()
    if not _SHA256.fullmatch(sha256):
        raise StoreRejected(f"not a sha256 hex digest: {sha256!r}")
    if not _EXT.fullmatch(ext):
        raise StoreRejected(f"not a safe extension: {ext!r}")
    return f"media/{sha256[:2]}/{sha256}.{ext}"


def check_key(key: str) -> str:
    """Return ``key`` when it is a safe relative key, else raise StoreRejected.

    Safe: non-empty ``/``-separated segments, none of them starting with ``.`` (so no ``..``
    and no names that a local store uses for its own temporary and sidecar files), no
    backslash or control characters, at most MAX_KEY_BYTES bytes.
    """
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise StoreRejected(f"bad key length: {key[:80]!r}")
    if "\\" in key or _CONTROL.search(key):
        raise StoreRejected(f"bad character in key: {key[:80]!r}")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise StoreRejected(f"bad key segment in {key[:80]!r}")
    return key


def encode_path(name: str) -> str:
    """A safe key path for an arbitrary id (article ids are relative paths, maybe hostile).

    Each segment is percent-encoded (``%`` included, so the result decodes uniquely with
    ``urllib.parse.unquote``); slashes that would make an empty segment (leading, trailing,
    doubled) are encoded as ``%2F``; a leading dot is encoded so ``.``/``..`` cannot appear.
    Ids too long for a key become ``%hashed/<sha256 of the id>``, which no encoded id can
    collide with (a literal ``%`` always encodes as ``%25``).
    """
    out: list[str] = []
    pending = ""
    for segment in name.split("/"):
        if not segment:
            pending += "%2F"
            continue
        encoded = quote(segment, safe=_SEGMENT_SAFE)
        if not pending and encoded.startswith("."):
            encoded = "%2E" + encoded[1:]
        out.append(pending + encoded)
        pending = ""
    if pending:
        if out:
            out[-1] += pending
        else:
            out.append(pending)
    result = "/".join(out)
    too_long = len(result) > MAX_KEY_BYTES - 100 or any(
        len(segment) > MAX_SEGMENT_BYTES for segment in out
    )
    if too_long:
        return "%hashed/" + hashlib.sha256(name.encode("utf-8")).hexdigest()
    return result
