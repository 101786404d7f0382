"""A local directory laid out exactly like the S3 bucket: ``<root>/media/ab/<sha256>.jpg``.

Writes go to a hidden temporary file in the target directory, are fsynced, then linked into
place with ``os.link``, which fails if the name exists: a crash never leaves a partial object
under its final key and two writers cannot both create it. Content type and metadata live in
sidecars under ``<root>/.meta/`` (hidden, so listings and ``verify`` never see them); they are
written only when the type differs from what the extension implies or metadata was given.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mimetypes
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from archiver.errors import (
    ObjectMissing,
    StoreError,
    StoreFull,
    StoreReadOnly,
    StoreRejected,
)
from archiver.store.base import Closing, ObjectInfo, clean_metadata
from archiver.store.keys import check_key

META_DIR = ".meta"
COPY_CHUNK = 1024 * 1024
# errnos meaning "this filesystem cannot hard-link", where we fall back to O_EXCL + rename
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class LocalStore(Closing):
    """A Store over a directory. ``fsync=False`` trades crash safety for speed (benchmarks)."""

    def __init__(self, root: str | os.PathLike[str], url: str | None = None,
                 fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = url or str(root)
        self._fsync = fsync

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / (check_key(key) + ".json")

    def check(self) -> None:
        """Raise unless the directory exists (it is created) and takes a write: StoreFull,
        StoreReadOnly or StoreError naming it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".tmp-check-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise os_error(exc, f"store directory {self.root} is not writable") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, file: IO[bytes], size: int, content_type: str,
            metadata: dict[str, str] | None = None) -> bool:
        path = self._path(key)
        if path.exists():
            return False  # not even a temporary copy: the bytes are already here
        try:
            created = self._write(path, file, size, overwrite=False)
            if created:
                self._write_meta(key, content_type, metadata, overwrite=False)
            return created
        except OSError as exc:
            raise os_error(exc, f"cannot write {key} under {self.root}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str,
                  metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool:
        path = self._path(key)
        if not overwrite and path.exists():
            return False
        try:
            with tempfile.SpooledTemporaryFile(max_size=len(data) + 1) as buf:
                buf.write(data)
                buf.seek(0)
                created = self._write(path, buf, len(data), overwrite=overwrite)
            if created:
                self._write_meta(key, content_type, metadata, overwrite=overwrite)
            return created
        except OSError as exc:
            raise os_error(exc, f"cannot write {key} under {self.root}") from exc

    def _write(self, path: Path, file: IO[bytes], size: int, overwrite: bool) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                written = _copy(file, out)
                if written != size:
                    raise StoreRejected(f"expected {size} bytes for {path.name}, got {written}")
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
            if overwrite:
                os.replace(tmp, path)
                created = True
            else:
                created = _link_exclusive(tmp, path)
            if created and self._fsync:
                _fsync_dir(path.parent)
            return created
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _write_meta(self, key: str, content_type: str, metadata: dict[str, str] | None,
                    overwrite: bool) -> None:
        clean = clean_metadata(metadata)
        meta_path = self._meta_path(key)
        if not clean and content_type == _guess_type(key):
            if overwrite:  # a previous version may have had a sidecar that no longer applies
                with contextlib.suppress(FileNotFoundError):
                    meta_path.unlink()
            return
        body = json.dumps({"content_type": content_type, "metadata": clean},
                          sort_keys=True).encode()
        with tempfile.SpooledTemporaryFile() as buf:
            buf.write(body)
            buf.seek(0)
            self._write(meta_path, buf, len(body), overwrite=overwrite)

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def open(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectMissing(f"no object {key} under {self.root}", key=key) from exc
        except OSError as exc:
            raise os_error(exc, f"cannot read {key} under {self.root}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        content_type, metadata = _guess_type(key), {}
        try:
            meta = json.loads(self._meta_path(key).read_bytes())
            content_type, metadata = meta["content_type"], dict(meta["metadata"])
        except FileNotFoundError:
            pass  # no sidecar: the type is what the extension says (or a crash came between)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged sidecar must not hide the object itself
        return ObjectInfo(key, st.st_size, st.st_mtime, _etag(st), content_type, metadata)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")):
            raise StoreRejected(f"bad prefix: {prefix!r}")
        directory, _, _ = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        yield from _walk(base, f"{directory}/" if directory else "", prefix)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            for path in (self._path(key), self._meta_path(key)):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise os_error(exc, f"cannot delete {key} under {self.root}") from exc

    def public_url(self, key: str) -> str:
        return self._path(key).as_uri()


def os_error(exc: OSError, what: str) -> StoreError:
    """The one boundary from OSError to the error tree: no space (or quota) is StoreFull, a
    read-only file system or a permission refusal StoreReadOnly, anything else StoreError."""
    message = f"{what}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(message, errno=exc.errno)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(message, errno=exc.errno)
    return StoreError(message, errno=exc.errno)


def _walk(directory: Path, key_prefix: str, wanted: str) -> Iterator[ObjectInfo]:
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
                yield from _walk(Path(entry.path), key + "/", wanted)
        elif entry.is_file(follow_symlinks=False) and key.startswith(wanted):
            st = entry.stat(follow_symlinks=False)
            yield ObjectInfo(key, st.st_size, st.st_mtime, _etag(st))


def _etag(st: os.stat_result) -> str:
    # Not an MD5: a version token. Every write replaces the inode (link or rename), and the
    # mtime alone can repeat within the kernel's clock tick.
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}"


def _copy(src: IO[bytes], dst: IO[bytes]) -> int:
    written = 0
    while chunk := src.read(COPY_CHUNK):
        dst.write(chunk)
        written += len(chunk)
    return written


def _link_exclusive(tmp: str, path: Path) -> bool:
    """Put ``tmp`` at ``path`` only if ``path`` does not exist; False when it does."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    # No hard links here (some FUSE/SMB mounts): reserve the name, then rename over it. A
    # crash between the two leaves an empty file, which verify reports as a size mismatch.
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    os.replace(tmp, path)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _guess_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"
