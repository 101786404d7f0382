"""What a worker checks before it takes any task: its settings load and its store is there.

A worker started against a missing bucket, a denied one or a read-only directory would
otherwise take tasks and fail every one of them; instead it exits at once with one line that
names the store (exit 2, a configuration error). A store that does not answer at startup (an
outage) is only a warning: tasks retry until it is back.
"""

from __future__ import annotations

import logging
import sys

from archiver.errors import ArchiverError, ConfigError
from archiver.settings import Settings, load_settings
from archiver.store import open_store

log = logging.getLogger(__name__)


def check_worker(settings: Settings | None = None) -> str | None:
    """None when the worker may start, else the one-line reason it must not. Transient store
    errors are logged and let the worker start."""
    try:
        settings = settings or load_settings()
        with open_store(settings.store) as store:
            store.check()
    except ConfigError as exc:
        return f"archiver worker: {exc.message}"
    except ArchiverError as exc:
        if exc.retryable and exc.code not in ("store-readonly",):
            log.warning("store %s does not answer at startup (%s); tasks will retry",
                        settings.store.url if settings else "?", exc.message)
            return None
        url = settings.store.url if settings else "?"
        return f"archiver worker: cannot start: {exc.message} ({exc.code}, store {url})"
    return None


def refuse_to_start(reason: str) -> None:
    """Print ``reason`` and end the process (exit 2) before the worker consumes anything."""
    print(reason, file=sys.stderr, flush=True)
    raise SystemExit(2)
