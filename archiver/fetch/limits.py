"""Per-host limits: how many requests at once, how fast, and pauses after 429/Retry-After.

The HTTP fetcher calls ``limiter.slot(host)`` around every request it makes and
``limiter.pause(host, seconds)`` when a host answers 429/503 with Retry-After. The in-process
runner uses ``LocalHostLimiter``; Celery workers use the Redis-backed limiter in
``archiver.coordination`` so that the caps and pauses hold across every worker.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class HostLimiter(Protocol):
    def slot(self, host: str) -> AbstractContextManager[None]:
        """Block until ``host`` is not paused, under its rate and concurrency caps, then hold
        one of its concurrency slots for the duration of the ``with`` block."""
        ...

    def pause(self, host: str, seconds: float) -> None:
        """Stop every caller from starting requests to ``host`` for ``seconds``."""
        ...

    def paused(self) -> dict[str, float]:
        """Hosts paused now, with the seconds left."""
        ...
