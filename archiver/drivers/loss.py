"""A Redis that lost its data, and how ``enqueue --wait`` gets its batch back.

Redis acknowledges a write before it is on disk: restarted without its AOF (or with its data
directory gone) it comes back empty, and after a crash with ``appendfsync everysec`` it comes
back without its last second. Messages waiting in a queue are then gone with nothing else
naming them: no worker started them, so no in-flight entry exists for the sweepers (``sweep``).

After each chunk of tasks the broker took, the enqueuer writes in the broker's Redis how many
of its batch's assets it has sent so far (``batch:<id>:sent``). Redis replays its AOF in order,
so a count that survived says the messages sent before it survived too; a count lower than
what was sent, or none, says from which asset on messages may be lost. ``Recovery`` (run by
``enqueue --wait`` at every poll) then waits one heartbeat (``claim_ttl / 4``: live workers take
back their claims and in-flight entries, ``coordination.Lease.renew``), and publishes again
every asset from that point on that has no final status, no final record in the manifest, no
claim and no in-flight entry; then registers the batch again (its meta, for the workers'
sweepers) and writes the full count. A message that did survive is then delivered twice, which
is harmless: the claim, the manifest and the batch's final status make the second a no-op.

Statuses reported before the loss are gone too: ``wait_for`` reads the records of assets whose
status never came (``enqueue._final_records``), here at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis

from archiver.drivers.coordination import PREFIX, Batches, guarded
from archiver.drivers.sweep import keys_inflight
from archiver.errors import CoordinationError
from archiver.manifest import Manifest
from archiver.models import Asset
from archiver.settings import Settings

log = logging.getLogger(__name__)


def sent_key(batch: str) -> str:
    return f"{PREFIX}batch:{batch}:sent"


def broker_client(settings: Settings, coordination: redis.Redis) -> redis.Redis:
    """A client for the broker's Redis (the coordination client when they are the same)."""
    c = settings.celery
    if c.broker_url == c.coordination_url:
        return coordination
    return redis.Redis.from_url(c.broker_url, decode_responses=True, socket_timeout=30,
                                socket_connect_timeout=10)


def mark_sent(client: redis.Redis, batch: str, sent: int, ttl: float) -> None:
    """Record that the first ``sent`` assets of ``batch`` are in the broker; never raises (a
    count left behind only makes ``Recovery`` publish those assets again)."""
    try:
        guarded(lambda: client.set(sent_key(batch), sent, px=max(1, int(ttl * 1000))))
    except CoordinationError as exc:
        log.warning("batch %s: sent count not recorded: %s", batch, exc.message)


class Recovery:
    """In ``enqueue --wait``: notices that Redis lost part of the batch and publishes again the
    assets whose message may be gone (see the module's docstring)."""

    def __init__(self, client: redis.Redis, settings: Settings, batch: str,
                 assets: Sequence[Asset], manifest: Manifest | None,
                 final_records: Callable[[Manifest, set[str]], dict[str, str]]) -> None:
        self.client = client
        self.broker = broker_client(settings, client)
        self.settings = settings
        self.batch = batch
        self.assets = list(assets)
        self.manifest = manifest
        self.final_records = final_records
        self.settle = settings.celery.claim_ttl / 4 + 1.0
        self.seen: float | None = None  # when the loss was first seen

    def survived(self) -> tuple[int, bool]:
        """How many of the sent assets the broker still counts, and whether the batch's meta
        is still in the coordination Redis."""
        raw = guarded(lambda: self.broker.get(sent_key(self.batch)))
        meta = guarded(lambda: self.client.exists(f"{PREFIX}batch:{self.batch}:meta"))
        return (int(raw) if raw is not None else 0), bool(meta)

    def check(self, reported: dict[str, str], recorded: dict[str, str]) -> int:
        """One look (Redis answers); returns how many assets were published again. Final
        statuses read from records on the way are added to ``recorded``."""
        if not self.assets:
            return 0
        counted, meta = self.survived()
        if counted >= len(self.assets) and meta:
            self.seen = None
            return 0
        now = time.monotonic()
        if self.seen is None:
            self.seen = now
            log.warning("batch %s: Redis lost data (%d of %d sent assets counted%s); publishing "
                        "again what may be lost in %.0fs", self.batch, counted, len(self.assets),
                        "" if meta else ", the batch unknown", self.settle)
            return 0
        if now - self.seen < self.settle:
            return 0
        suspects = [a for a in self.assets[counted:]
                    if a.id not in reported and a.id not in recorded]
        if self.manifest is not None and suspects:
            recorded.update(self.final_records(self.manifest, {a.id for a in suspects}))
            suspects = [a for a in suspects if a.id not in recorded]
        todo = self._unclaimed(suspects)
        if todo:
            from archiver.drivers.enqueue import send

            log.warning("batch %s: publishing %d assets again after Redis lost them: %s",
                        self.batch, len(todo), ", ".join(a.origin for a in todo[:5]))
            send(todo, self.settings, batch=self.batch)
        Batches(self.client, self.settings.celery.batch_ttl).start(self.batch, len(self.assets))
        mark_sent(self.broker, self.batch, len(self.assets), self.settings.celery.batch_ttl)
        self.seen = None
        return len(todo)

    def _unclaimed(self, assets: list[Asset]) -> list[Asset]:
        """Those of ``assets`` no worker holds (a claim) or tracks (an in-flight entry)."""
        if not assets:
            return []
        inflight = keys_inflight(self.batch)
        pipe = self.client.pipeline()
        for asset in assets:
            pipe.exists(f"{PREFIX}claim:{asset.id}")
            pipe.hexists(inflight, asset.id)
        found = guarded(pipe.execute)
        return [a for i, a in enumerate(assets) if not (found[2 * i] or found[2 * i + 1])]

    def close(self) -> None:
        if self.broker is not self.client:
            self.broker.close()
