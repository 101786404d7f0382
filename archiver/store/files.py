"""The local store's file helpers: temporary files opened create-only, written whole, closed
and removed quietly; directories made once; listings; OSErrors as the error tree's."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from archiver.errors import StoreError, StoreFull, StoreReadOnly
from archiver.store.base import ObjectInfo

TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def make_dir(directory: str) -> None:
    """``directory`` and its missing parents (one mkdir when only the last is missing)."""
    try:
        os.mkdir(directory)
    except FileExistsError:
        pass  # a file there fails the open that follows (ENOTDIR)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def close_quietly(fd: int, tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def os_error(exc: OSError, what: str) -> StoreError:
    """The one boundary from OSError to the error tree: no space (or quota) is StoreFull, a
    read-only file system or a permission refusal StoreReadOnly, anything else StoreError."""
    message = f"{what}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(message, errno=exc.errno)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(message, errno=exc.errno)
    return StoreError(message, errno=exc.errno)


def walk(directory: Path, key_prefix: str, wanted: str) -> Iterator[ObjectInfo]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise os_error(exc, f"cannot list {directory}") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue  # temporary files and sidecars; keys never have dot segments
        key = key_prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            if key.startswith(wanted) or wanted.startswith(key + "/"):
                yield from walk(Path(entry.path), key + "/", wanted)
        elif entry.is_file(follow_symlinks=False) and key.startswith(wanted):
            st = entry.stat(follow_symlinks=False)
            yield ObjectInfo(key, st.st_size, st.st_mtime, etag(st))


def etag(st: os.stat_result) -> str:
    # Not an MD5: a version token. Every write replaces the inode (link or rename), and the
    # mtime alone can repeat within the kernel's clock tick.
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}"
