"""Per-host limits: how many requests at once, how fast, and pauses after 429/Retry-After.

The HTTP fetcher calls ``limiter.slot(host)`` around every request it makes and
``limiter.pause(host, seconds)`` when a host answers 429/503 with Retry-After. The in-process
runner uses ``LocalHostLimiter``; Celery workers use the Redis-backed limiter in
``archiver.drivers.coordination`` so that the caps and pauses hold across every worker.
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from archiver.settings import Settings


class HostLimiter(Protocol):
    def slot(self, host: str) -> AbstractContextManager[None]:
        """Block until ``host`` is not paused, under its rate and concurrency caps, then hold
        one of its concurrency slots for the duration of the ``with`` block."""
        ...

    def pause(self, host: str, seconds: float) -> None:
        """Stop every caller from starting requests to ``host`` for ``seconds``."""
        ...


def share(total: int, part: int, parts: int, host: str = "") -> int:
    """Part ``part``'s share of ``total`` split over ``parts``: the shares add up to ``total``
    exactly, and the remainder goes to different parts for different hosts."""
    base, extra = divmod(total, parts)
    return base + ((part - zlib.crc32(host.encode())) % parts < extra)


class LocalHostLimiter:
    """HostLimiter for one process: a semaphore per host, optional spacing for
    ``HostRule.rate`` and pauses, all in memory (threads of this process share them).
    ``part`` (index, parts): this process is one of ``parts`` archiving one plan, and takes
    its ``share`` of each host's cap and its part of each host's rate."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        part: tuple[int, int] = (0, 1),
    ) -> None:
        self.fs = settings.fetch
        self.part = part
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sems: dict[str, queue.SimpleQueue[None]] = {}
        self._next_start: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}

    def _semaphore(self, host: str) -> queue.SimpleQueue[None]:
        """The host's slots: a queue holding one token per free slot, taken and given back in
        C (``threading.BoundedSemaphore`` ran a Condition in Python for each acquire and
        release, once per request)."""
        sem = self._sems.get(host)
        if sem is not None:
            return sem
        with self._lock:
            sem = self._sems.get(host)
            if sem is None:
                sem = queue.SimpleQueue()
                for _ in range(share(self.fs.rule_for(host).max_concurrency, *self.part, host)):
                    sem.put(None)
                self._sems[host] = sem
            return sem

    def _wait_turn(self, host: str, rate: float | None) -> None:
        """Sleep while the host is paused, then take the next start time its rate allows."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until.get(host, 0.0) - now
                if wait <= 0 and rate:
                    start = max(now, self._next_start.get(host, 0.0))
                    self._next_start[host] = start + 1.0 / rate
                    wait = start - now
                    if wait <= 0:
                        return
                    # The start time is reserved: sleep it out without re-checking the rate.
                    rate = None
                elif wait <= 0:
                    return
            self._sleep(wait)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        host = host.lower()
        sem = self._semaphore(host)
        sem.get()
        try:
            rate = self.fs.rule_for(host).rate
            self._wait_turn(host, rate / self.part[1] if rate else None)
            yield
        finally:
            sem.put(None)

    def pause(self, host: str, seconds: float) -> None:
        host = host.lower()
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            self._paused_until[host] = max(until, self._paused_until.get(host, 0.0))
