"""The local store's file helpers: temporary files opened create-only, written whole, closed
and removed quietly; directories made once."""

from __future__ import annotations

import contextlib
import os

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
