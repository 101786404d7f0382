"""An object's content type and metadata in a local store: one JSON body
(``{"content_type": ..., "metadata": {...}}``), kept in the user extended attribute
``user.archiver.meta`` of the object's own file, set on its temporary file before the data is
made durable and the file linked into place: the name and its metadata appear together,
atomically, and creating an object costs one file (one inode, one directory entry) instead of
two (the sidecar, in a second directory tree).

Where the file system takes no user extended attributes (tmpfs before Linux 6.6, vfat, some
NFS, FUSE and SMB mounts) the store writes the body as before, to a sidecar
``<root>/.meta/<key>.json`` linked right after its object (``commit.py``); it finds out at its
first refused write and keeps to sidecars from then on. A body the file system will not hold
in an attribute (too large for its attribute space) goes to a sidecar too, for that object
only. Readers look at the attribute first, then at the sidecar, so archives written with
sidecars (every archive before this layout) read the same.
"""

from __future__ import annotations

import errno
import json
import mimetypes
import os

from archiver.store.base import clean_metadata

XATTR = "user.archiver.meta"
# Where os.setxattr exists (Linux): elsewhere every body goes to a sidecar.
HAVE_XATTRS = hasattr(os, "setxattr") and hasattr(os, "getxattr")
# The file system refuses user extended attributes: sidecars for the store from now on.
REFUSED = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.ENOSYS})
# This body does not fit in the file's attribute space: its sidecar (a sidecar write that
# fails the same way, on a full disk, then raises StoreFull as any write).
TOO_BIG = frozenset({errno.E2BIG, errno.ENOSPC, errno.ERANGE, errno.EDQUOT})


# What json.dumps(..., sort_keys=True) writes, without the encoder it builds for each call
# given any option.
_ENCODER = json.JSONEncoder(sort_keys=True)


def guess_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


def body(key: str, content_type: str, metadata: dict[str, str] | None) -> bytes | None:
    """The metadata body of ``key``: None when the extension says it all and there is no
    metadata (nothing is written)."""
    clean = clean_metadata(metadata)
    if not clean and content_type == guess_type(key):
        return None
    return _ENCODER.encode({"content_type": content_type, "metadata": clean}).encode()


def attach(fd: int, meta: bytes) -> bool | None:
    """Set ``meta`` as the attribute of the open file ``fd``: True when done, False when this
    body does not fit (its sidecar then), None when the file system refuses user attributes.
    Any other error raises."""
    try:
        os.setxattr(fd, XATTR, meta)
    except OSError as exc:
        if exc.errno in TOO_BIG:
            return False
        if exc.errno in REFUSED:
            return None
        raise
    return True


def read(path: str, sidecar: str) -> tuple[str, dict[str, str]] | None:
    """(content type, metadata) of the object at ``path``: from its attribute, else from its
    sidecar; None when it has neither (the extension then says the type) or they are damaged
    (a damaged body must not hide the object itself)."""
    for source in (_attribute, _sidecar):
        raw = source(path, sidecar)
        if raw is None:
            continue
        try:
            meta = json.loads(raw)
            content_type: str = meta["content_type"]
            return content_type, dict(meta["metadata"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _attribute(path: str, _: str) -> bytes | None:
    if not HAVE_XATTRS:
        return None
    try:
        return os.getxattr(path, XATTR)
    except OSError:
        return None  # ENODATA: none (an object of the sidecar layout); ENOTSUP: no attributes


def _sidecar(_: str, sidecar: str) -> bytes | None:
    try:
        with open(sidecar, "rb") as fh:
            return fh.read()
    except OSError:
        return None  # none: the type is what the extension says (or a crash came between)
