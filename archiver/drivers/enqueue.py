"""Enqueue: send a plan's missing assets to the workers in batches, and wait for a batch to
finish (``job.enqueue_paths`` composes these)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from archiver.drivers.coordination import Batches, connect
from archiver.drivers.tasks import make_app, queue_for, task_for
from archiver.models import Asset
from archiver.plan import Plan
from archiver.settings import Settings


@dataclass(frozen=True)
class Enqueued:
    """What one enqueue did: assets found, already archived, sent (per queue), its batch."""

    batch: str
    found: int
    archived: int
    enqueued: int
    retrying: int = 0
    queues: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"batch": self.batch, "found": self.found, "already_archived": self.archived,
                "enqueued": self.enqueued, "retrying": self.retrying, "queues": self.queues}


def send(assets: Iterable[Asset], settings: Settings, *, batch: str,
         app: Celery | None = None) -> Counter[str]:
    """Publish one task per asset over one broker connection, ``enqueue_batch`` at a time;
    returns the count per queue. The tasks carry JSON primitives only. An app made here is
    closed here."""
    if app is None:
        with make_app(settings) as own:
            return send(assets, settings, batch=batch, app=own)
    the_app = app
    c = settings.celery
    sent: Counter[str] = Counter()
    chunk: list[Asset] = []

    def flush() -> None:
        with the_app.producer_or_acquire() as producer, _batched(producer, len(chunk)):
            # Queues bound to this channel and declared once: unbound, kombu copies and binds
            # the queue again for every message (a quarter of the cost of a send).
            bound: dict[str, Any] = {}
            for asset in chunk:
                name, queue = task_for(asset.kind), queue_for(asset.kind, settings)
                if queue not in bound:
                    bound[queue] = the_app.amqp.queues[queue].bind(producer.channel)
                    producer.maybe_declare(bound[queue])
                # argsrepr: Celery would otherwise saferepr every asset dict (a fifth of the
                # cost of a send); the asset id is what logs and Flower need.
                the_app.send_task(name, args=(asset.to_dict(), batch), queue=queue,
                                  producer=producer, argsrepr=asset.id, kwargsrepr="",
                                  declare=[bound[queue]])
                sent[queue] += 1
        chunk.clear()

    for asset in assets:
        chunk.append(asset)
        if len(chunk) >= c.enqueue_batch:
            flush()
    if chunk:
        flush()
    return sent


def _batched(producer: Any, size: int) -> AbstractContextManager[Any]:
    """kombu >= 5.7 buffers a batch of publishes into one Redis pipeline (one round trip and
    one client instead of one per message: 2-3x the enqueue rate); older kombu sends each."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=size) if batch is not None else nullcontext()


def enqueue_plan(plan: Plan, settings: Settings, *, batch: str | None = None,
                 app: Celery | None = None) -> Enqueued:
    """Send the plan's missing assets as one batch whose progress the tasks report."""
    batch = batch or uuid.uuid4().hex
    with connect(settings) as client:
        # Registered before sending so that a fast worker never reports to an unknown batch.
        Batches(client, settings.celery.batch_ttl).start(batch, len(plan.todo))
    sent = send(plan.todo, settings, batch=batch, app=app)
    return Enqueued(batch=batch, found=len(plan.assets), archived=len(plan.archived),
                    enqueued=sum(sent.values()), retrying=plan.retrying, queues=dict(sent))


def wait_for(batch: str, total: int, settings: Settings, *,
             on_progress: Callable[[Counter[str]], None] | None = None,
             poll: float = 0.5, timeout: float | None = None) -> Counter[str]:
    """Poll the batch until ``total`` assets have a final status (or ``timeout`` seconds
    pass); returns the counts by status."""
    from archiver.drivers.sweep import Sweeper

    deadline = None if timeout is None else time.monotonic() + timeout
    with connect(settings) as client:
        batches = Batches(client, settings.celery.batch_ttl)
        # Also sweeps the batch for assets lost with a dead worker (any live worker does too).
        sweeper = Sweeper(client, settings, batch=batch)
        next_sweep = time.monotonic() + settings.celery.sweep_interval
        while True:
            counts = batches.progress(batch)
            if on_progress is not None:
                on_progress(counts)
            if sum(counts.values()) >= total:
                return counts
            if deadline is not None and time.monotonic() >= deadline:
                return counts
            if time.monotonic() >= next_sweep:
                sweeper.sweep()
                next_sweep = time.monotonic() + settings.celery.sweep_interval
            time.sleep(poll)
