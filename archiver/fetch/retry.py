"""How long to wait before trying again: exponential backoff with jitter, and Retry-After."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime


def backoff(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): "equal jitter", half of
    ``base * 2**(attempt-1)`` fixed plus a random half, capped at ``cap``. The fixed half keeps
    retries from hammering a struggling host; the random half spreads workers apart."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


def parse_retry_after(
    value: str | None, cap: float, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), clamped to
    ``[0, cap]`` so a hostile or broken server cannot park a worker for days; None when the
    header is absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now()
    return max(0.0, min(cap, seconds))
