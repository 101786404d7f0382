"""Per-host circuit breaker and negative DNS cache: dead hosts cost seconds, not minutes.

After ``fetch.host_down_after`` connection failures or timeouts in a row on one host, every
further request to it fails at once with ``HostDown`` for ``fetch.host_down_cooldown`` seconds;
a name DNS says does not exist fails its other requests with the same ``NameNotFound`` for as
long. Any HTTP answer from the host (even an error status) closes the breaker again. The state
lives in the fetcher, so for one ``archiver archive`` run, or one worker process (where the
cool-down lets the host be tried again by a later task).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from archiver.errors import ConnectFailed, FetchError, HostDown, NameNotFound, TimedOut


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    reason: FetchError | None = None  # what made it open (the NameNotFound, or the last one)


class HostHealth:
    """Thread-safe per-host failure counts (one per fetcher)."""

    def __init__(self, threshold: int, cooldown: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._hosts: dict[str, _State] = {}
        self._lock = threading.Lock()

    def check(self, host: str) -> None:
        """Raise the host's standing error (HostDown, or the NameNotFound it had) while its
        breaker is open."""
        with self._lock:
            state = self._hosts.get(host)
            now = self._clock()
            if state is None or state.open_until <= now:
                return
            reason, left = state.reason, round(state.open_until - now, 1)
        if isinstance(reason, NameNotFound):
            raise NameNotFound(reason.message, host=host, cached=True)
        raise HostDown(f"{host} is down: {state.failures} connections failed or timed out in a "
                       f"row ({reason.code if reason else '?'}: {reason.message if reason else ''}"
                       f"); not tried again for {left:g}s", host=host, retry_in=left)

    def failed(self, host: str, exc: FetchError) -> None:
        """Count a failed request: connection failures and timeouts open the breaker after
        ``threshold`` in a row; a name that does not exist opens it at once."""
        if isinstance(exc, HostDown) or self.threshold <= 0:
            return
        if not isinstance(exc, (ConnectFailed, TimedOut, NameNotFound)):
            self.answered(host)  # the host answered something: it is up
            return
        with self._lock:
            state = self._hosts.setdefault(host, _State())
            state.failures += 1
            state.reason = exc
            if isinstance(exc, NameNotFound) or state.failures >= self.threshold:
                state.open_until = self._clock() + self.cooldown

    def answered(self, host: str) -> None:
        """The host answered (any HTTP status): close its breaker."""
        with self._lock:
            self._hosts.pop(host, None)
