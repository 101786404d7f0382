"""A Redis that lost its data, and how a batch is got back: by ``enqueue --wait`` and by the
fleet itself.

Redis acknowledges a write before it is on disk: restarted without its AOF (or with its data
directory gone) it comes back empty, and after a crash with ``appendfsync everysec`` it comes
back without its last second. Messages waiting in a queue are then gone with nothing else
naming them: no worker started them, so no in-flight entry exists for the sweepers (``sweep``).

After each chunk of tasks the broker took, the enqueuer writes in the broker's Redis how many
of its batch's assets it has sent so far (``batch:<id>:sent``). Redis replays its AOF in order,
so a count that survived says the messages sent before it survived too. ``Recoverer.standings``
reads what Redis still says of a set of batches (one pipeline, one MGET): a batch whose meta
is gone is lost from its first asset (a count written after the loss, by an enqueuer still
sending, vouches for nothing); one whose count is below its total is lost from that count on;
one whose enqueuer still holds ``sending:<batch>`` is its enqueuer's until it is sent.

``Recoverer.recover`` gets a lost batch back, given its assets in the order sent. Under the
batch's recovery lease (``recovery:<batch>``: one process at a time, the enqueuer waiting on
the batch or a worker) it looks again, then publishes every asset from that point on that has
no final status, no final record in the manifest, no claim and no in-flight entry; writes the
statuses read from records back into the batch (so that it finishes), registers the batch
again (its meta, for the workers' sweepers) and writes the full count. A message that did
survive is then delivered twice, which is harmless: the claim, the manifest and the batch's
final status make the second a no-op. Its callers act one heartbeat (``settle``: ``claim_ttl /
4`` + 1 s) after they first saw the loss: live workers take back their claims and in-flight
entries meanwhile (``coordination.Lease.renew``).

Two callers: ``Recovery``, run by ``enqueue --wait`` at every poll with the batch's assets in
memory, and ``journal.Rescue``, run by the workers' sweepers with the assets read from the
batch's journal in the store, so that a batch nobody waits on is got back too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import redis
from celery import Celery

from archiver.drivers.coordination import (
    CLAIM,
    PREFIX,
    RECOVERY,
    SENDING,
    Batches,
    Claims,
    guarded,
    lease_key,
)
from archiver.drivers.sweep import keys_inflight
from archiver.errors import CoordinationError, class_of
from archiver.manifest import Manifest
from archiver.manifest.records import parallel_map
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
    count left behind only makes the batch look lost, and its assets published again)."""
    try:
        guarded(lambda: client.set(sent_key(batch), sent, px=max(1, int(ttl * 1000))))
    except CoordinationError as exc:
        log.warning("batch %s: sent count not recorded: %s", batch, exc.message)


@dataclass(frozen=True)
class Standing:
    """What Redis still says of one batch."""

    counted: int  # assets the broker's count vouches for
    total: int | None  # from its meta; None when the meta is gone
    done: int  # final statuses reported
    inflight: int  # in-flight entries
    sending: bool  # its enqueuer is still sending it
    recovering: bool = False  # a process holds its recovery lease

    def lost_from(self, total: int | None = None) -> int | None:
        """None when Redis vouches for every message of the batch (``total``, else its meta's),
        else the position in the batch from which messages may be lost."""
        if self.total is None:
            return 0
        return None if self.counted >= (self.total if total is None else total) \
            else self.counted

    @property
    def finished(self) -> bool:
        """Every asset has its final status and nothing is in flight."""
        return self.total is not None and not self.inflight and self.done >= self.total


def final_records(manifest: Manifest, ids: Collection[str]) -> dict[str, str]:
    """Statuses of the records among ``ids`` that no task will change any more: archived,
    skipped, or failed for good (a retryable failure may be a task's intermediate state).
    Raises the store's error."""
    order = sorted(ids)
    if not order:
        return {}
    # The first alone: it reads the index that the others then find cached.
    records = [manifest.load(order[0]),
               *parallel_map(manifest.load, order[1:], manifest.workers)]
    out: dict[str, str] = {}
    for asset_id, record in zip(order, records, strict=True):
        if record is not None and (record.status != "failed"
                                   or not class_of(record.error).retryable):
            out[asset_id] = record.status
    return out


class Recoverer:
    """Reads what Redis says of batches and gets back the ones it lost (see the module's
    docstring). ``app``: the Celery app to publish with (a worker's own), else one made for
    each publish."""

    def __init__(self, client: redis.Redis, settings: Settings,
                 app: Celery | None = None) -> None:
        self.client = client
        self.broker = broker_client(settings, client)
        self.settings = settings
        self.app = app
        self.settle = settings.celery.claim_ttl / 4 + 1.0
        self.locks = Claims(client, settings.celery.claim_ttl, kind=RECOVERY)
        self.batches = Batches(client, settings.celery.batch_ttl)

    def standings(self, batches: Sequence[str]) -> list[Standing]:
        """What Redis says of each of ``batches``: one pipeline and one MGET, whatever their
        sizes."""
        if not batches:
            return []
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            key = f"{PREFIX}batch:{batch}"
            pipe.hget(f"{key}:meta", "total")
            pipe.hlen(key)
            pipe.hlen(keys_inflight(batch))
            pipe.exists(lease_key(SENDING, batch))
            pipe.exists(lease_key(RECOVERY, batch))
        found = guarded(pipe.execute)
        counts = guarded(lambda: self.broker.mget([sent_key(b) for b in batches]))
        out = []
        for i, counted in enumerate(counts):
            total, done, inflight, sending, recovering = found[5 * i:5 * i + 5]
            out.append(Standing(int(counted or 0), None if total is None else int(total),
                                int(done), int(inflight), bool(sending), bool(recovering)))
        return out

    def recover(self, batch: str, assets: Sequence[Asset], manifest: Manifest | None,
                recorded: dict[str, str]) -> int | None:
        """Publish again what Redis lost of ``batch`` (its ``assets`` in the order sent);
        returns how many, or None when it is not this process's to do: another holds its
        recovery, or its enqueuer is still sending it. ``recorded``: final statuses known
        from records, to which those read here are added. Raises CoordinationError or the
        store's error (nothing is registered then: the next look tries again)."""
        lease = self.locks.acquire(batch)
        if lease is None:
            return None
        try:
            standing = self.standings([batch])[0]
            if standing.sending:
                return None
            start = standing.lost_from(len(assets))
            if start is None:  # got back by whoever held the lease before
                return 0
            reported = self.batches.statuses(batch)
            suspects = [a for a in assets[start:]
                        if a.id not in reported and a.id not in recorded]
            if manifest is not None and suspects:
                recorded.update(final_records(manifest, {a.id for a in suspects}))
                suspects = [a for a in suspects if a.id not in recorded]
            todo = self._unclaimed(batch, suspects)
            if todo:
                from archiver.drivers.enqueue import send

                log.warning("batch %s: publishing %d assets again after Redis lost them: %s",
                            batch, len(todo), ", ".join(a.origin for a in todo[:5]))
                send(todo, self.settings, batch=batch, app=self.app)
            self.batches.start(batch, len(assets))
            ids = {a.id for a in assets}
            self.batches.restore(batch, {k: v for k, v in recorded.items()
                                         if k in ids and k not in reported})
            mark_sent(self.broker, batch, len(assets), self.settings.celery.batch_ttl)
            return len(todo)
        finally:
            lease.release()

    def _unclaimed(self, batch: str, assets: list[Asset]) -> list[Asset]:
        """Those of ``assets`` no worker holds (a claim) or tracks (an in-flight entry)."""
        if not assets:
            return []
        inflight = keys_inflight(batch)
        pipe = self.client.pipeline()
        for asset in assets:
            pipe.exists(lease_key(CLAIM, asset.id))
            pipe.hexists(inflight, asset.id)
        found = guarded(pipe.execute)
        return [a for i, a in enumerate(assets) if not (found[2 * i] or found[2 * i + 1])]

    def close(self) -> None:
        if self.broker is not self.client:
            self.broker.close()


class Recovery:
    """In ``enqueue --wait``: notices that Redis lost part of the batch and publishes again the
    assets whose message may be gone (see the module's docstring)."""

    def __init__(self, client: redis.Redis, settings: Settings, batch: str,
                 assets: Sequence[Asset], manifest: Manifest | None) -> None:
        self.recoverer = Recoverer(client, settings)
        self.batch = batch
        self.assets = list(assets)
        self.manifest = manifest
        self.settle = self.recoverer.settle
        self.seen: float | None = None  # when the loss was first seen

    def check(self, recorded: dict[str, str]) -> int:
        """One look (Redis answers); returns how many assets were published again. Final
        statuses read from records on the way are added to ``recorded`` (and written back to
        the batch)."""
        if not self.assets:
            return 0
        standing = self.recoverer.standings([self.batch])[0]
        if standing.lost_from(len(self.assets)) is None:
            self.seen = None
            return 0
        now = time.monotonic()
        if self.seen is None:
            self.seen = now
            log.warning("batch %s: Redis lost data (%d of %d sent assets counted%s); publishing "
                        "again what may be lost in %.0fs", self.batch, standing.counted,
                        len(self.assets), "" if standing.total is not None
                        else ", the batch unknown", self.settle)
            return 0
        if now - self.seen < self.settle:
            return 0
        published = self.recoverer.recover(self.batch, self.assets, self.manifest, recorded)
        if published is None:  # a worker is at it: look again at the next poll
            return 0
        self.seen = None
        return published

    def close(self) -> None:
        self.recoverer.close()
