"""Group commit for the local store: temporary files made durable and linked into place by one
thread, many at a time, instead of an fsync of each file and of its directory per write.

A writer thread writes its bytes to a temporary file beside the final name and hands the open
file to the ``Committer`` (``commit``), which returns once the bytes are durable and the file
is at its final name (or raises). The committer works in cycles; each cycle makes durable, with
one ``syncfs`` of the file system (file by file where there is none):

- the data of every file handed over since the last cycle, which is then put at its name
  (create-only ``os.link``, or ``os.replace`` for an overwrite) and its writer told;
- the names put in place in the cycle before.

So a name never points to bytes that are not durable, and a create-only write never replaces
anything. A name is durable one cycle after its writer was told, and before anything written
later through the same store is put at its own name (that write's cycle syncs first): a record
written after its object can never survive a crash that its object's name does not. A crash
leaves at most hidden temporary files (``.tmp-*``, never listed; the next run removes them).
A file that follows another (an object's metadata sidecar, where the file system refuses the
extended attribute that otherwise carries it: ``meta.py``) is put at its name right after that
one, in the same cycle, and not at all when that one was not created; a journaling file system
makes the two names durable in that order (a crash may leave the object without its sidecar,
as before, and a sidecar left over without its object is replaced when the object is stored).
A write waits for one cycle whatever the number of writers: with 32 threads writing, about one
``syncfs`` per cycle instead of two fsyncs per file; the cycle after the last write, which
runs at once, makes its name durable.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Files this large are fsynced by their writer before the hand-over: a 1 GB video must not
# make every other writer's cycle wait for its data.
SYNC_BY_WRITER = 8 * 1024 * 1024
# errnos meaning "this filesystem cannot hard-link", where we fall back to O_EXCL + rename
NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class Latch:
    """Set once by one thread, waited for by another: a lock held from the start and released
    by ``set``. Cheaper than ``threading.Event`` (a Condition and a lock of its own for each
    wait, in Python code) on the write path, where every object has one."""

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._flag = False

    def set(self) -> None:
        if not self._flag:  # set by one thread only (the committer's, or the writer's own)
            self._flag = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._flag

    def wait(self) -> None:
        with self._lock:
            pass


@dataclass(eq=False)
class Pending:
    """One temporary file to put at ``path``: ``fd`` open on it (closed by the committer),
    ``overwrite`` to replace what is there, ``after``: the file it follows (stage 1)."""

    fd: int
    tmp: str
    path: str
    overwrite: bool = False
    after: Pending | None = None
    synced: bool = False  # the writer fsynced its data already (large files)
    placed: bool = False  # put at its name (or found the name taken)
    created: bool = False
    error: OSError | None = None
    done: Latch = field(default_factory=Latch)

    def finish(self, error: OSError | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.done.set()


class Committer:
    """The committing thread of one store (started on first use, again after a fork)."""

    def __init__(self) -> None:
        self._forget()
        _COMMITTERS.add(self)

    def _forget(self) -> None:
        """A fresh state: at creation, and in the child after a fork (the parent's thread
        is not there, and its lock may have been held at the fork)."""
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False

    def commit(self, items: list[Pending]) -> None:
        """Make the bytes of ``items`` durable and put them at their names (durable by the
        next cycle, before any later write is); return when done, each item's ``created`` or
        ``error`` set. Once queued, the items are the committer's to close and remove."""
        with self._cond:
            if self._thread is None or self._pid != _PID[0] or not self._thread.is_alive():
                try:
                    self._start()
                except BaseException:
                    for item in items:
                        with contextlib.suppress(OSError):
                            os.close(item.fd)
                        _discard(item)
                    raise
            self._queue.extend(items)
            self._cond.notify()
        for item in items:
            item.done.wait()

    def _start(self) -> None:
        self._closed = False
        self._pid = _PID[0]
        self._thread = threading.Thread(target=self._loop, name="store-commit", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread() \
                and self._pid == _PID[0]:
            thread.join(timeout=30)
        self._thread = None

    def _loop(self) -> None:
        linked: list[Pending] = []  # linked in the last cycle: durable after the next sync
        blocked: list[Pending] = []  # data durable, waiting for the file they follow
        while True:
            with self._cond:
                while not self._queue and not linked and not blocked and not self._closed:
                    self._cond.wait()
                if not self._queue and not linked and not blocked:
                    return
                new, self._queue = self._queue, []
            try:
                linked, blocked = cycle(new, linked, blocked)
            except BaseException as exc:  # never leave a writer waiting
                error = exc if isinstance(exc, OSError) else OSError(str(exc))
                for item in (*new, *linked, *blocked):
                    _discard(item)
                    item.finish(error)
                raise


_COMMITTERS: weakref.WeakSet[Committer] = weakref.WeakSet()
# This process's id, kept up to date across forks: os.getpid() is a system call each time,
# and the write path asks for it on every temporary file.
_PID = [os.getpid()]


def current_pid() -> int:
    """``os.getpid()`` without the system call."""
    return _PID[0]


def _after_fork() -> None:
    global _POOL
    _PID[0] = os.getpid()
    # The parent's syncing threads are not in the child: a pool of them would take work and
    # never run it (every sync of the child would wait forever). The child makes its own.
    _POOL = None
    for committer in list(_COMMITTERS):
        committer._forget()


os.register_at_fork(after_in_child=_after_fork)


def cycle(new: list[Pending], linked: list[Pending],
          blocked: list[Pending]) -> tuple[list[Pending], list[Pending]]:
    """One cycle (module docstring): sync the data of ``new`` and the names of ``linked``, put
    what may be at its name and tell its writer. Returns the new ``linked`` and ``blocked``."""
    sync([item for item in new if not item.synced], linked)
    for item in new:
        with contextlib.suppress(OSError):
            os.close(item.fd)
    for item in linked:
        if item.error is not None:  # its writer has gone on: the next writes fail alike
            log.warning("%s may not survive a crash: %s", item.path, item.error)
    now_linked: list[Pending] = []
    still_blocked: list[Pending] = []
    for item in (*blocked, *new):
        if item.error is not None:
            _discard(item)
            item.finish()
        elif item.after is not None and (item.after.error is not None
                                         or (item.after.placed and not item.after.created)):
            _discard(item)  # its object failed (placed or not), or was there already
            item.finish()
        elif item.after is not None and not item.after.placed:
            still_blocked.append(item)
        else:
            try:
                place(item)
            except OSError as exc:
                item.finish(exc)
                continue
            if item.created:
                now_linked.append(item)
            item.finish()  # its writer goes on: the next cycle makes the name durable
    return now_linked, still_blocked


def sync(data: list[Pending], names: list[Pending]) -> None:
    """Make the bytes of ``data`` and the names of ``names`` durable: one ``syncfs``, or an
    fsync per file and per directory, 16 at a time (where there is no syncfs). A failure is
    the error of the items it concerns."""
    if not data and not names:
        return
    if _syncfs(data[0].fd if data else names[0].path):
        return
    dirs: dict[str, list[Pending]] = {}
    for item in names:
        dirs.setdefault(os.path.dirname(item.path), []).append(item)
    jobs: list[tuple[int | str, list[Pending]]] = [(item.fd, [item]) for item in data]
    jobs += list(dirs.items())

    def run(job: tuple[int | str, list[Pending]]) -> None:
        target, items = job
        try:
            if isinstance(target, int):
                os.fsync(target)  # not fdatasync: the file's metadata attribute too
            else:
                fsync_dir(target)
        except OSError as exc:
            for item in items:
                item.error = exc

    if len(jobs) == 1:
        run(jobs[0])
    else:  # concurrent fsyncs share the file system's journal commits and cache flushes
        list(_syncers().map(run, jobs))


_POOL: ThreadPoolExecutor | None = None


def _syncers() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="store-sync")
    return _POOL


def place(item: Pending) -> None:
    """Put ``item``'s temporary file at its name (``created`` says whether it did)."""
    moved = False  # the temporary name is gone (renamed): nothing left to remove
    try:
        if item.overwrite or item.after is not None:
            # A file that follows another belongs to it: that one was just created (or
            # replaced), so whatever is at this name is a leftover.
            os.replace(item.tmp, item.path)
            moved = item.created = True
        else:
            item.created = link_exclusive(item.tmp, item.path)
        item.placed = True
    finally:
        if not moved:
            _discard(item)


def _discard(item: Pending) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(item.tmp)


def link_exclusive(tmp: str, path: str) -> bool:
    """Put ``tmp`` at ``path`` only if ``path`` does not exist; False when it does."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_LINK:
            raise
    # No hard links here (some FUSE/SMB mounts): reserve the name, then rename over it. A
    # crash between the two leaves an empty file, which verify reports as a size mismatch.
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    os.replace(tmp, path)
    return True


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return fn


_SYNCFS = _load_syncfs()


def _syncfs(where: int | str) -> bool:
    """Everything written to the file system holding ``where`` (an open file, or a path whose
    directory is opened for the call) made durable by one ``syncfs`` (data, inodes, directory
    entries: one journal commit); False where there is none or it failed (the caller then
    syncs file by file). A cycle with new files syncs through the first one's descriptor,
    still open: two system calls fewer than opening its directory."""
    if _SYNCFS is None:
        return False
    if isinstance(where, int):
        return bool(_SYNCFS(where) == 0)
    try:
        fd = os.open(os.path.dirname(where), os.O_RDONLY)
    except OSError:
        return False
    try:
        return bool(_SYNCFS(fd) == 0)
    finally:
        os.close(fd)


def place_now(items: list[Pending]) -> None:
    """Link ``items`` in order without making anything durable (a store without fsync)."""
    for item in items:
        with contextlib.suppress(OSError):
            os.close(item.fd)
        if item.after is not None and (item.after.error is not None or not item.after.created):
            _discard(item)
        else:
            try:
                place(item)
            except OSError as exc:
                item.error = exc
        item.done.set()
