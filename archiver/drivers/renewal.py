"""The background threads behind Redis leases: a renewer that extends held leases on a period
(a lease outlives a slow download but not the process holding it), and a releaser that retries
the releases Redis did not take while it was down (a Redis blip must not leave a claim or a
host slot held for a whole lease)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from archiver.errors import CoordinationError

log = logging.getLogger("archiver.drivers.coordination")


class Renewer:
    """A daemon thread extending leases every ``period`` seconds while they are held, so a
    lease outlives a slow download but not the process holding it. The thread ends after a
    round with nothing held (an enqueuer's one lease leaves no thread behind) and starts
    again with the next lease."""

    def __init__(self, period: float) -> None:
        self.period = max(0.05, period)
        self._jobs: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, name: str, job: Callable[[], object]) -> None:
        with self._lock:
            self._jobs[name] = job
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lease-renewer",
                                                daemon=True)
                self._thread.start()

    def remove(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)

    def _loop(self) -> None:
        while True:
            time.sleep(self.period)
            with self._lock:
                jobs = list(self._jobs.values())
                if not jobs:
                    self._thread = None  # ``add`` starts another
                    return
            for job in jobs:
                try:
                    job()
                except (redis.RedisError, CoordinationError):
                    pass  # the next round tries again; a lost lease just expires
                except Exception:  # one broken job must not stop every other lease's renewal
                    log.exception("lease renewal failed")


class Releaser:
    """Releases that Redis did not take (it was down), tried again in a daemon thread every
    ``period`` seconds until they succeed or their lease would have expired anyway: a Redis
    blip must not leave a host slot or an asset claim held for a whole lease, stalling every
    download of the host or the asset's retry."""

    def __init__(self, period: float = 0.5) -> None:
        self.period = period
        self._pending: list[tuple[float, Callable[[], object]]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def release(self, call: Callable[[], object], within: float) -> None:
        """``call()`` now, or later in the background if Redis does not answer; never raises."""
        try:
            call()
            return
        except redis.RedisError:
            pass
        with self._lock:
            self._pending.append((time.monotonic() + within, call))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="releaser",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.period)
            with self._lock:
                pending, self._pending = self._pending, []
            left = []
            for deadline, call in pending:
                try:
                    call()
                except redis.RedisError:
                    if time.monotonic() < deadline:
                        left.append((deadline, call))
            with self._lock:
                self._pending.extend(left)
                if not self._pending:
                    self._thread = None
                    return


releaser = Releaser()
