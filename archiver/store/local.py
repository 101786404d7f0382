"""A local directory laid out exactly like the S3 bucket: ``<root>/media/ab/<sha256>.jpg``.

Writes go to a hidden temporary file in the target directory, are made durable, then linked
into place with ``os.link``, which fails if the name exists: a crash never leaves a partial
object under its final key and two writers cannot both create it. The fsyncs (of the files and
of their directories) are done in groups by one thread (``commit.py``): a write returns once
its file is durable under its name, as before, at a fraction of the cost. Content type and
metadata (when the type differs from what the extension implies or metadata was given) live
in the object file's extended attribute ``user.archiver.meta``, set before it is made durable
and linked, so they appear with the name; where the file system refuses one, in sidecars under
``<root>/.meta/`` (hidden from listings and ``verify``) linked right after their object. Readers
try the attribute, then the sidecar (``meta.py``; older archives have only sidecars).
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import logging
import os
import secrets
import tempfile
import time
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
from archiver.store import meta as _meta
from archiver.store.base import Closing, ObjectInfo, process_alive
from archiver.store.commit import SYNC_BY_WRITER, Committer, Pending, current_pid, place_now
from archiver.store.files import TMP_FLAGS, close_quietly, etag, make_dir, os_error, walk, write_all
from archiver.store.keys import check_key

log = logging.getLogger(__name__)

META_DIR = ".meta"
COPY_CHUNK = 1024 * 1024
# Beyond a refused write's own bytes, the room ``ready_for_writes`` wants before it lets the
# next download go: the sidecar, the record and the directories' blocks.
ROOM_MARGIN = 256 * 1024
# Less free than this and the store counts as full before any download (``ready_for_writes``),
# and an object whose bytes leave less is refused (StoreFull): room kept for the records of the
# objects already stored (a record never written leaves its object an orphan, and the run
# could not report it).
FREE_MIN = 64 * 1024
# How long a passed ``ready_for_writes`` check holds (seconds): one statvfs per this many
# downloads' worth of time instead of one per download. A refused write (full, read-only)
# makes every later check look again, until the file system would take it.
READY_FOR = 0.1
# An object is checked against FREE_MIN without a system call while the free space seen at
# most READY_FOR seconds ago, less what this store wrote since (a page more per object), stays
# this much above it: room for what other writers (other runner processes) add meanwhile.
ROOM_SLACK = 64 * 1024 * 1024


class LocalStore(Closing):
    """A Store over a directory. ``fsync=False`` trades crash safety for speed (benchmarks);
    ``xattrs=False`` writes metadata to sidecars as on a file system without attributes."""

    def __init__(self, root: str | os.PathLike[str], url: str | None = None,
                 fsync: bool = True, xattrs: bool = True) -> None:
        self.root = Path(root).absolute()
        self._root = str(self.root)
        self.url = url or str(root)
        self._fsync = fsync
        self._xattrs = xattrs and _meta.HAVE_XATTRS  # False after the file system refused one
        self._committer = Committer()
        self._dirs: set[str] = set()  # directories known to exist (made once)
        self._token = secrets.token_hex(4)  # temporary names unique across store instances
        self._seq = itertools.count()
        # The last write refused for want of room or permission, and how many bytes it needed:
        # ``ready_for_writes`` raises it again until the file system would take it.
        self._refused: tuple[StoreError, int] | None = None
        self._ready_until = 0.0  # monotonic time until which the last passed check holds
        # Free bytes seen by the last fstatvfs of a write, until when that look holds, and the
        # bytes written since (``_check_room``; updated by the writers without a lock: a lost
        # update costs at most one object's bytes, well inside ROOM_SLACK).
        self._free = 0
        self._free_until = 0.0
        self._spent = 0

    def close(self) -> None:
        """Stop the committing thread (every write has returned by then)."""
        self._committer.close()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _name(self, key: str) -> str:
        """``_path`` as a string, without building a Path (the write path's)."""
        return f"{self._root}/{check_key(key)}"

    def _meta_name(self, key: str) -> str:
        return f"{self._root}/{META_DIR}/{check_key(key)}.json"

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

    def ready_for_writes(self) -> None:
        """Raise StoreReadOnly or StoreFull while a write would be refused: at once from the
        file system's state (mounted read-only, under ``FREE_MIN`` bytes free; one statvfs), and
        after a refused write until it would go through (room for its bytes and a margin, and
        a probe file written). A check passed holds for ``READY_FOR`` seconds while no write
        was refused."""
        if self._refused is None and time.monotonic() < self._ready_until:
            return
        st = self._statvfs()
        if st.f_flag & os.ST_RDONLY:
            raise StoreReadOnly(f"store directory {self.root} is on a read-only file system",
                                errno=errno.EROFS)
        free = st.f_bavail * st.f_frsize
        refused = self._refused
        needed = refused[1] + ROOM_MARGIN if refused and isinstance(refused[0], StoreFull) \
            else FREE_MIN
        if free < needed:
            raise StoreFull(f"no room under {self.root}: {free} bytes free, {needed} wanted",
                            errno=errno.ENOSPC)
        if refused is None:
            self._ready_until = time.monotonic() + READY_FOR
            return
        self.check()  # not writable still (permissions, quota): raises
        if self._refused is refused:
            self._refused = None

    def _statvfs(self) -> os.statvfs_result:
        """The file system of the root (of its nearest existing parent before the first write)."""
        path = self.root
        while not path.exists() and path.parent != path:
            path = path.parent
        try:
            return os.statvfs(path)
        except OSError as exc:
            raise os_error(exc, f"cannot look at the file system of {self.root}") from exc

    def _refusal(self, exc: OSError, what: str, needed: int) -> StoreError:
        error = os_error(exc, what)
        if isinstance(error, StoreFull | StoreReadOnly):
            before = self._refused
            if before is not None and type(before[0]) is type(error):
                needed = max(needed, before[1])  # a record refused after its media
            self._refused = (error, needed)
            self._ready_until = 0.0
        return error

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, file: IO[bytes], size: int, content_type: str,
            metadata: dict[str, str] | None = None) -> bool:
        # No look first (a system call, and a hand-over of the GIL, per new object): an object
        # that is there already (the same bytes at another URL) is found by the create-only
        # link, or, when the file system will not take its copy, after that refusal.
        path = self._name(key)
        try:
            meta = _meta.body(key, content_type, metadata)
            obj, attached = self._stage(path, file, size, overwrite=False, meta=meta)
            return self._commit(self._with_sidecar(key, obj, meta, attached, overwrite=False))
        except OSError as exc:
            if os.path.exists(path):
                return False  # the bytes are here already: nothing to refuse
            raise self._refusal(exc, f"cannot write {key} under {self.root}", size) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str,
                  metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool:
        path = self._name(key)
        if not overwrite and os.path.exists(path):
            return False
        try:
            meta = _meta.body(key, content_type, metadata)
            obj, attached = self._stage_bytes(path, data, overwrite=overwrite, meta=meta)
            items = self._with_sidecar(key, obj, meta, attached, overwrite=overwrite)
            created = self._commit(items)
            if created and overwrite and len(items) == 1:
                # a previous version may have had a sidecar that no longer applies
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._meta_name(key))
            return created
        except OSError as exc:
            raise self._refusal(exc, f"cannot write {key} under {self.root}", len(data)) from exc

    def _with_sidecar(self, key: str, obj: Pending, meta: bytes | None, attached: bool,
                      overwrite: bool) -> list[Pending]:
        """``obj``, and the sidecar that follows it when its metadata is not on its file (put
        at its name right after the object, if that is created)."""
        if meta is None or attached:
            return [obj]
        try:
            side, _ = self._stage_bytes(self._meta_name(key), meta, overwrite=overwrite,
                                        after=obj)
        except BaseException:
            close_quietly(obj.fd, obj.tmp)
            raise
        return [obj, side]

    def _attach(self, fd: int, meta: bytes | None) -> bool:
        """Set ``meta`` on the file ``fd`` (``meta.py``); whether it is there. The first
        refusal of the file system turns the store to sidecars."""
        if meta is None or not self._xattrs:
            return False
        done = _meta.attach(fd, meta)
        if done is None:
            self._xattrs = False
            log.info("no user extended attributes under %s: metadata in sidecars", self.root)
        return bool(done)

    def _commit(self, items: list[Pending]) -> bool:
        """Hand the staged files to the committer; whether the first one was created."""
        if self._fsync:
            # Once queued, the items are the committer's: it closes and removes them even when
            # this wait is interrupted (closing their descriptors here could close another
            # thread's file that reused the number before the committer gets to them).
            self._committer.commit(items)
        else:
            try:
                place_now(items)
            except BaseException:
                for item in items:
                    if not item.done.is_set():
                        close_quietly(item.fd, item.tmp)
                raise
        for item in items:
            if item.error is not None:
                raise item.error
        return items[0].created

    def _tmp_for(self, path: str) -> tuple[int, str]:
        """A new hidden temporary file beside ``path`` (its directory made once)."""
        directory = path.rpartition("/")[0]
        tmp = f"{directory}/.tmp-{current_pid()}-{self._token}-{next(self._seq)}"
        if directory in self._dirs:
            try:
                return os.open(tmp, TMP_FLAGS, 0o644), tmp
            except FileNotFoundError:
                self._dirs.discard(directory)  # removed behind our back: made again below
        make_dir(directory)
        self._dirs.add(directory)
        return os.open(tmp, TMP_FLAGS, 0o644), tmp

    def _stage(self, path: str, file: IO[bytes], size: int, overwrite: bool,
               meta: bytes | None) -> tuple[Pending, bool]:
        """``file``'s bytes in a temporary file beside ``path``, ready for the committer, and
        whether ``meta`` is on it (``_attach``)."""
        fd, tmp = self._tmp_for(path)
        try:
            written = 0
            if isinstance(file, io.BytesIO) and not file.tell():
                data = file.getvalue()  # its own buffer, not a copy (a small spooled body)
                file.seek(len(data))
                write_all(fd, data)
                written = len(data)
            while chunk := file.read(COPY_CHUNK):
                write_all(fd, chunk)
                written += len(chunk)
            if written != size:
                name = path.rpartition("/")[2]
                raise StoreRejected(f"expected {size} bytes for {name}, got {written}")
            self._check_room(fd, size)
            attached = self._attach(fd, meta)
            synced = self._fsync and size >= SYNC_BY_WRITER
            if synced:
                os.fsync(fd)
        except BaseException:
            close_quietly(fd, tmp)
            raise
        return Pending(fd, tmp, path, overwrite=overwrite, synced=synced), attached

    def _check_room(self, fd: int, size: int) -> None:
        """Raise ENOSPC when the bytes just written to ``fd`` leave under FREE_MIN free: one
        fstatvfs (after them, and those written before) each READY_FOR seconds, or as soon as
        what was written since the last could have come within ROOM_SLACK of FREE_MIN."""
        self._spent = spent = self._spent + size + 4096
        if self._free - spent >= FREE_MIN + ROOM_SLACK and time.monotonic() < self._free_until:
            return
        st = os.fstatvfs(fd)
        self._free = free = st.f_bavail * st.f_frsize
        self._spent = 0
        self._free_until = time.monotonic() + READY_FOR
        if free < FREE_MIN:
            raise OSError(errno.ENOSPC, "no room left for the records")

    def _stage_bytes(self, path: str, data: bytes, overwrite: bool,
                     after: Pending | None = None,
                     meta: bytes | None = None) -> tuple[Pending, bool]:
        fd, tmp = self._tmp_for(path)
        try:
            write_all(fd, data)
            attached = self._attach(fd, meta)
        except BaseException:
            close_quietly(fd, tmp)
            raise
        return Pending(fd, tmp, path, overwrite=overwrite, after=after), attached

    def discard_leftovers(self) -> int:
        """Remove the temporary files that writers which died left behind (those of processes
        of this host that are gone, or older than an hour); how many. Run after a crash."""
        removed = 0
        cutoff = time.time() - 3600
        for directory, _, files in os.walk(self.root):
            for name in files:
                if not name.startswith(".tmp-"):
                    continue
                path = os.path.join(directory, name)
                pid = name.split("-")[1]
                try:
                    if (pid.isdigit() and not process_alive(int(pid))) \
                            or os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    continue
        return removed

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
        found = _meta.read(str(path), self._meta_name(key))
        content_type, metadata = found if found is not None else (_meta.guess_type(key), {})
        return ObjectInfo(key, st.st_size, st.st_mtime, etag(st), content_type, metadata)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")):
            raise StoreRejected(f"bad prefix: {prefix!r}")
        directory, _, _ = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        yield from walk(base, f"{directory}/" if directory else "", prefix)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            for path in (self._name(key), self._meta_name(key)):
                try:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                except OSError as exc:
                    raise os_error(exc, f"cannot delete {key} under {self.root}") from exc

    def public_url(self, key: str) -> str:
        return self._path(key).as_uri()
