"""A task's way through an outage of Redis: its retry is published, and its final status
reported, once Redis answers again; never dropped.

Celery's ``Task.retry`` turns a publish that fails into ``Reject(requeue=False)``, which drops
the message: here the publish is tried again with backoff for up to ``celery.outage_wait``
seconds, and only then is the message given back unacknowledged (``Reject(requeue=True)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

from celery import Task
from celery.exceptions import Reject, Retry

from archiver.errors import ArchiverError, CoordinationError
from archiver.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def reschedule(task: Task, settings: Settings, countdown: float, outages: int) -> NoReturn:
    """Publish the task's retry in ``countdown`` seconds (waiting for Redis when it is down),
    then end this delivery with Celery's Retry, which acks the message."""
    request = task.request
    kwargs = {**(request.kwargs or {}), "outages": outages}
    args = list(request.args or ())[:2]  # the asset and the batch; the rest are kwargs

    def publish() -> Retry:
        # throw=False: a retry that cannot be published raises Reject(requeue=False), which
        # would drop the message; when_back catches it and tries again.
        return task.retry(args=args, kwargs=kwargs, countdown=countdown, max_retries=None,
                          throw=False)

    raise when_back(settings, f"retry {request.id}", publish)


def when_back(settings: Settings, what: str, call: Callable[[], T]) -> T:
    """``call()``, tried again with backoff while Redis does not take it, for up to
    ``outage_wait`` seconds; then the message goes back to the broker unacknowledged
    (``Reject(requeue=True)``; should that fail too, the broker redelivers it once its
    visibility timeout passes)."""
    deadline = time.monotonic() + settings.celery.outage_wait
    pause = 0.2
    while True:
        try:
            return call()
        except (CoordinationError, Reject) as exc:
            reason = exc.message if isinstance(exc, ArchiverError) else str(exc.reason)
            if time.monotonic() >= deadline:
                log.error("%s: Redis still does not answer (%s); requeueing", what, reason)
                raise Reject(reason, requeue=True) from exc
            log.warning("%s: Redis does not answer (%s); again in %.1fs", what, reason, pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
