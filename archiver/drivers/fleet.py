"""One store per fleet: which store a task is meant for, and which store the live workers serve.

A task message carries the identity of its enqueuer's store (``store_identity``); a worker
serving another store refuses the task (``WrongStore``) instead of archiving into its own.

Each worker's main process announces the store it serves in Redis and renews it on a heartbeat:

    worker:<node name>      store identity, expiring after three heartbeats (PX)

so a killed worker drops out within ``3 * announce_interval`` seconds, and ``enqueue`` warns
when no live worker serves its store (one SCAN over a handful of keys).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from archiver.drivers.coordination import PREFIX, connect, guarded
from archiver.settings import Settings, StoreSettings, load_settings

log = logging.getLogger(__name__)

WORKER = f"{PREFIX}worker:"


def store_identity(store: StoreSettings) -> str:
    """The store a URL names, written the same way whatever the spelling: ``s3://bucket/prefix``
    without the slashes around the prefix, a local directory as ``file://`` and its absolute
    path. The S3 endpoint is left out: an enqueuer may reach the fleet's bucket by another
    name."""
    url = store.url
    parts = urlsplit(url)
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        return f"s3://{parts.netloc}/{prefix}" if prefix else f"s3://{parts.netloc}"
    path = unquote(parts.path) if parts.scheme == "file" else url
    return "file://" + os.path.abspath(Path(path).expanduser())


class Announcer:
    """A daemon thread that keeps ``worker:<name>`` set to the store this worker serves, every
    ``interval`` seconds with a TTL of three intervals; ``stop`` removes it. A Redis outage only
    skips heartbeats: the next one after it sets the key again."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.key = WORKER + name
        self.identity = store_identity(settings.store)
        self.interval = settings.celery.announce_interval
        self.client = connect(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="store-announcer", daemon=True)

    def start(self) -> Announcer:
        self._thread.start()
        return self

    def beat(self) -> None:
        ttl = max(1, int(self.interval * 3000))
        guarded(lambda: self.client.set(self.key, self.identity, px=ttl))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:  # never let the heartbeat thread die
                log.debug("store announcement skipped: %s", exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass  # it expires on its own
        self.client.close()


_announcers: list[Announcer] = []


def announce_store(sender: Any = None, **_: Any) -> None:
    """``worker_ready`` handler: announce this worker's store under its node name."""
    name = str(getattr(sender, "hostname", None) or f"{os.uname().nodename}.{os.getpid()}")
    _announcers.append(Announcer(load_settings(), name).start())


def stop_announcing(**_: Any) -> None:
    """``worker_shutdown`` handler: stop the heartbeat and remove the announcement."""
    while _announcers:
        _announcers.pop().stop()


def serving(client: redis.Redis) -> dict[str, str]:
    """Live workers (node name) and the store identity each serves."""
    keys = guarded(lambda: list(client.scan_iter(f"{WORKER}*", count=1000)))
    if not keys:
        return {}
    values = guarded(lambda: client.mget(keys))
    return {str(k)[len(WORKER):]: str(v) for k, v in zip(keys, values, strict=True)
            if v is not None}


def fleet_warning(client: redis.Redis, identity: str) -> str | None:
    """None when a live worker serves ``identity``, else a one-line warning for the enqueuer."""
    workers = serving(client)
    if any(store == identity for store in workers.values()):
        return None
    if not workers:
        return (f"no live worker announces itself on this broker: the tasks for {identity} "
                f"wait until one starts")
    others = ", ".join(sorted(set(workers.values())))
    live = "the live one serves" if len(workers) == 1 else f"the {len(workers)} live ones serve"
    return (f"no live worker serves {identity}: {live} {others} "
            f"and will refuse these tasks as wrong-store")
