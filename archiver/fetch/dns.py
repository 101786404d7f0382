"""Name lookups bounded in time, for the guard (``Guard.resolve``, which both GET paths and
the video proxy call): getaddrinfo has no timeout of its own, and a resolver that never
answers held an asset, and the worker thread fetching it, past the asset's deadline.

A lookup runs on one of a few threads and is waited for at most the connection's timeout; past
it the caller gets ``TimedOut`` and goes on. getaddrinfo cannot be interrupted, so a lookup
that never answers keeps its thread until the system resolver gives up by itself (glibc after
its timeouts and attempts; a hung NSS module maybe never). Hence the bounds:

- at most ``MAX_THREADS`` lookup threads per process, started when needed, gone after
  ``IDLE_EXIT`` seconds without work;
- a name asked again while its lookup is queued or running waits for that lookup, so one name
  that hangs holds one thread however many assets ask for it;
- a lookup whose every caller gave up before a thread took it is dropped unrun.

With every thread held by names that do not answer, other lookups wait in the queue and time
out too, until a thread comes back: a hanging resolver makes new connections fail as
``timeout`` within their timeout, it does not hold them.

Numeric addresses (an IP in a URL, a connect-to target) are answered in the calling thread:
getaddrinfo only parses them, so they never wait for a thread.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence

from archiver.errors import ArchiverError, TimedOut

MAX_THREADS = 8
IDLE_EXIT = 10.0

Resolve = Callable[[str, int], Sequence[str]]
_Key = tuple[Resolve, str, int]


class _Lookup:
    __slots__ = ("done", "error", "key", "result", "started", "waiters")

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.done = threading.Event()
        self.result: Sequence[str] = ()
        self.error: BaseException | None = None
        self.started = False
        self.waiters = 1


class Lookups:
    """The lookup threads of a process (``LOOKUPS``; tests make their own)."""

    def __init__(self, max_threads: int = MAX_THREADS, idle_exit: float = IDLE_EXIT) -> None:
        self.max_threads = max_threads
        self.idle_exit = idle_exit
        self._reset()

    def _reset(self) -> None:
        """Fresh state: at start, and in a forked child (which has none of the threads, and
        may have a copy of the lock taken)."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queue: deque[_Lookup] = deque()
        self._pending: dict[_Key, _Lookup] = {}  # queued or running
        self.threads = 0
        self._idle = 0

    def resolve(self, resolve: Resolve, host: str, port: int, timeout: float) -> Sequence[str]:
        """``resolve(host, port)`` on a lookup thread, waited for at most ``timeout`` seconds.
        Raises what it raised, or TimedOut."""
        key = (resolve, host, port)
        with self._lock:
            job = self._pending.get(key)
            if job is None:
                job = self._pending[key] = _Lookup(key)
                self._queue.append(job)
                if self._idle >= len(self._queue):
                    self._work.notify()
                elif self.threads < self.max_threads:
                    self.threads += 1
                    threading.Thread(target=self._run, name="archiver-dns", daemon=True).start()
                # else every thread is busy: the lookup waits for one
            else:
                job.waiters += 1
        if not job.done.wait(timeout):
            with self._lock:
                job.waiters -= 1
                if not job.waiters and not job.started and self._pending.get(key) is job:
                    self._queue.remove(job)
                    del self._pending[key]
            raise TimedOut(f"timed out: DNS lookup of {host} took more than {timeout:.3g}s",
                           host=host)
        if job.error is not None:
            raise _again(job.error)
        return job.result

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._idle += 1
                    self._work.wait(self.idle_exit)
                    self._idle -= 1
                    if not self._queue:
                        self.threads -= 1
                        return
                job = self._queue.popleft()
                job.started = True
            try:
                job.result = job.key[0](job.key[1], job.key[2])
            except BaseException as exc:  # handed to every caller, raised there
                job.error = exc
            with self._lock:
                if self._pending.get(job.key) is job:
                    del self._pending[job.key]
            job.done.set()


def _again(error: BaseException) -> BaseException:
    """An error of one lookup raised in one of its callers: a copy for archiver's own (several
    threads may raise it, and raising sets the exception's traceback), chained to it."""
    if isinstance(error, ArchiverError):
        try:
            again = copy.copy(error)
        except TypeError:  # a constructor of other arguments: the one object, then
            return error
        again.__cause__ = error.__cause__
        return again
    return error


LOOKUPS = Lookups()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=LOOKUPS._reset)
