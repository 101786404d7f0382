"""Enqueue: send a plan's missing assets to the workers in batches, and wait for a batch to
finish (``job.enqueue_paths`` composes these)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from archiver.drivers.coordination import SENDING, Batches, Claims, connect
from archiver.drivers.fleet import fleet_warning, store_identity
from archiver.drivers.journal import write_journal
from archiver.drivers.loss import Recovery, broker_client, final_records, mark_sent
from archiver.drivers.tasks import make_app, queue_for, task_for
from archiver.errors import ArchiverError, CoordinationError
from archiver.manifest import Manifest
from archiver.models import Asset
from archiver.plan import Plan
from archiver.settings import Settings
from archiver.store import open_store
from archiver.store.base import Store, through_outages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enqueued:
    """What one enqueue did: assets found, already archived, sent (per queue), its batch."""

    batch: str
    found: int
    archived: int
    enqueued: int
    retrying: int = 0
    queues: dict[str, int] = field(default_factory=dict)
    store: str = ""  # the identity of the store the tasks are for (``fleet.store_identity``)
    warnings: tuple[str, ...] = ()  # e.g. no live worker serves the store

    def to_dict(self) -> dict[str, object]:
        return {"batch": self.batch, "found": self.found, "already_archived": self.archived,
                "enqueued": self.enqueued, "retrying": self.retrying, "queues": self.queues,
                "store": self.store, "warnings": list(self.warnings)}


def send(assets: Iterable[Asset], settings: Settings, *, batch: str,
         app: Celery | None = None, patience: float = 0.0,
         on_chunk: Callable[[int], None] | None = None) -> Counter[str]:
    """Publish one task per asset over one broker connection, ``enqueue_batch`` at a time (one
    Redis round trip each); returns the count per queue. The tasks carry JSON primitives only:
    the messages are Celery's (``TaskMessages``), published by kombu. An app made here is
    closed here. A chunk the broker did not take is sent again with backoff for up to
    ``patience`` seconds (a Redis restart); a message it did take twice is harmless (the claim,
    the manifest and the batch's final status make a second delivery a no-op). ``on_chunk``
    sees how many were sent so far after each chunk the broker took."""
    if app is None:
        with make_app(settings) as own:
            return send(assets, settings, batch=batch, app=own, patience=patience,
                        on_chunk=on_chunk)
    the_app = app
    c = settings.celery
    store = store_identity(settings.store)  # a worker serving another store refuses the task
    messages = TaskMessages(the_app, settings, batch, store)
    sent: Counter[str] = Counter()
    chunk: list[Asset] = []

    def flush() -> None:
        deadline, pause = time.monotonic() + patience, 0.5
        while True:
            try:
                sent.update(publish())
                break
            except Exception as exc:  # kombu's and redis-py's errors while Redis is down
                if isinstance(exc, ArchiverError) or time.monotonic() >= deadline:
                    raise CoordinationError(f"broker: {type(exc).__name__}: {exc}") from exc
                log.warning("the broker does not take the tasks (%s); again in %.1fs", exc,
                            pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
        chunk.clear()
        if on_chunk is not None:
            on_chunk(sum(sent.values()))

    def publish() -> Counter[str]:
        out: Counter[str] = Counter()
        with the_app.producer_or_acquire() as producer, _batched(producer, len(chunk)):
            # Queues declared once per chunk, not per message (kombu's maybe_declare per
            # publish is a fifth of its cost).
            declared: set[str] = set()
            for asset in chunk:
                message = messages.build(asset)
                if message.queue not in declared:
                    producer.maybe_declare(the_app.amqp.queues[message.queue].bind(
                        producer.channel))
                    declared.add(message.queue)
                producer.publish(message.body, exchange="", routing_key=message.queue,
                                 headers=message.headers, content_type=JSON,
                                 content_encoding="utf-8", delivery_mode=message.delivery_mode,
                                 retry=False, **message.properties)
                out[message.queue] += 1
        return out

    for asset in assets:
        chunk.append(asset)
        if len(chunk) >= c.enqueue_batch:
            flush()
    if chunk:
        flush()
    return sent


JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Message:
    """One task message, ready for ``Producer.publish``."""

    queue: str
    body: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    delivery_mode: int | str


class TaskMessages:
    """The Celery (protocol 2) task messages of one batch: what ``Celery.send_task`` would
    publish for each asset (test_enqueue_messages compares them on the wire), built from one
    template per task instead of Celery's per-message routing, option merging and argument
    repr (three quarters of a send's cost)."""

    def __init__(self, app: Celery, settings: Settings, batch: str, store: str) -> None:
        self.app, self.settings, self.batch, self.store = app, settings, batch, store
        self.templates: dict[str, tuple[dict[str, Any], dict[str, Any], int | str]] = {}

    def _template(self, name: str,
                  queue: str) -> tuple[dict[str, Any], dict[str, Any], int | str]:
        app = self.app
        # No time limits in the message: each worker applies its own settings' (annotations).
        headers, properties, _body, _event = app.amqp.create_task_message(
            "", name, (), {}, reply_to=app.thread_oid, time_limit=None, soft_time_limit=None,
            create_sent_event=False, ignore_result=None, argsrepr="", kwargsrepr="")
        properties["kwargsrepr"] = ""  # send_task copies its options into the properties
        if app.conf.task_send_sent_event:
            raise CoordinationError("task messages: Celery's task-sent events are not "
                                    "supported by enqueue")
        mode = app.amqp.queues[queue].exchange.delivery_mode
        return headers, properties, mode or app.conf.task_default_delivery_mode

    def build(self, asset: Asset) -> Message:
        name, queue = task_for(asset.kind), queue_for(asset.kind, self.settings)
        template = self.templates.get(name)
        if template is None:
            template = self.templates[name] = self._template(name, queue)
        headers, properties, mode = template
        task_id = str(uuid.uuid4())
        asset_id = asset.id
        body = json.dumps([[asset.to_dict(), self.batch], {"store": self.store},
                           {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        # argsrepr: the asset id is what logs and Flower need (Celery would saferepr the
        # asset dict); root_id: the task's own id, as for any task sent outside a task.
        return Message(queue, body, {**headers, "id": task_id, "root_id": task_id,
                                     "argsrepr": asset_id},
                       {**properties, "correlation_id": task_id, "argsrepr": asset_id}, mode)


def _batched(producer: Any, size: int) -> AbstractContextManager[Any]:
    """kombu >= 5.7 buffers a batch of publishes into one Redis pipeline (one round trip and
    one client instead of one per message: 2-3x the enqueue rate); older kombu sends each."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=size) if batch is not None else nullcontext()


def enqueue_plan(plan: Plan, settings: Settings, *, batch: str | None = None,
                 app: Celery | None = None, store: Store | None = None) -> Enqueued:
    """Send the plan's missing assets as one batch whose progress the tasks report, its
    journal written to the ``store`` (the settings' own when None) before the first message,
    so that the fleet gets the batch back should Redis lose it (``journal``); warn when no
    live worker serves the store. Raises the store's error when the journal cannot be written
    (for up to ``celery.outage_wait`` while the store does not answer): nothing is sent."""
    if store is None:
        with open_store(settings.store) as own:
            return enqueue_plan(plan, settings, batch=batch, app=app, store=own)
    the_store = store
    batch = batch or uuid.uuid4().hex
    identity = store_identity(settings.store)
    c = settings.celery
    with connect(settings) as client:
        # Held while it sends: a batch still being sent is not taken for lost (``loss``).
        sending = Claims(client, c.claim_ttl, kind=SENDING).acquire(batch) \
            if plan.todo else None
        broker = broker_client(settings, client)
        try:
            if plan.todo:  # a store that cannot take it: nothing registered, nothing sent
                through_outages(lambda: write_journal(the_store, batch, plan.todo),
                                c.outage_wait)
            # Registered before sending so that a fast worker never reports to an unknown batch.
            Batches(client, c.batch_ttl).start(batch, len(plan.todo))
            warning = fleet_warning(client, identity) if plan.todo else None
            # How many the broker took, for ``loss`` should Redis lose them.
            sent = send(plan.todo, settings, batch=batch, app=app, patience=c.outage_wait,
                        on_chunk=lambda n: mark_sent(broker, batch, n, c.batch_ttl))
        finally:
            if sending is not None:
                sending.release()
            if broker is not client:
                broker.close()
    return Enqueued(batch=batch, found=plan.counts["assets"], archived=plan.counts["archived"],
                    enqueued=sum(sent.values()), retrying=plan.retrying, queues=dict(sent),
                    store=identity, warnings=(warning,) if warning else ())


def wait_for(batch: str, total: int, settings: Settings, *,
             on_progress: Callable[[Counter[str]], None] | None = None,
             poll: float = 0.5, timeout: float | None = None,
             manifest: Manifest | None = None, assets: Sequence[Asset] = (),
             recheck: float = 10.0) -> Counter[str]:
    """Poll the batch until ``total`` assets have a final status (or ``timeout`` seconds
    pass); returns the counts by status. While Redis does not answer it keeps trying with
    backoff (redis-py reconnects) and counts on once it is back. Given the ``manifest`` and the
    batch's ``assets`` (in the order sent), every ``recheck`` seconds without progress the
    records of the assets with no status are read: a final record counts even when its status
    report was lost (a Redis crash loses its last second of writes). It sweeps the batch for
    assets lost with a dead worker (``sweep``; every live worker does too), and publishes again
    the assets whose message Redis lost with its data (``loss.Recovery``)."""
    from archiver.drivers.sweep import Sweeper

    ids = {asset.id for asset in assets}
    deadline = None if timeout is None else time.monotonic() + timeout
    counts: Counter[str] = Counter()
    recorded: dict[str, str] = {}  # final statuses read from records, not reported
    with connect(settings) as client, closing(
            Recovery(client, settings, batch, assets, manifest)) as recovery:
        batches = Batches(client, settings.celery.batch_ttl)
        sweeper = Sweeper(client, settings, batch=batch)
        next_sweep = time.monotonic() + settings.celery.sweep_interval
        pause, last, since = poll, -1, time.monotonic()
        while True:
            try:
                recovery.check(recorded)
                reported = batches.statuses(batch)
            except CoordinationError as exc:
                if pause == poll:
                    log.warning("Redis does not answer (%s); waiting for it", exc.message)
                pause = min(pause * 2, 5.0)
            else:
                pause = poll
                counts = Counter(reported.values())
                counts.update(v for k, v in recorded.items() if k not in reported)
                if on_progress is not None:
                    on_progress(counts)
                done = sum(counts.values())
                if done >= total:
                    return counts
                if done != last:
                    last, since = done, time.monotonic()
                elif manifest is not None and time.monotonic() - since >= recheck:
                    with suppress(ArchiverError):  # the store blinked: next time
                        recorded.update(final_records(manifest, ids - set(reported)))
                    since = time.monotonic()
            if deadline is not None and time.monotonic() >= deadline:
                return counts
            if time.monotonic() >= next_sweep:
                try:
                    sweeper.sweep()
                except Exception as exc:  # Redis or the broker blinked: the next pass tries
                    log.warning("sweep failed: %s", exc)
                next_sweep = time.monotonic() + settings.celery.sweep_interval
            time.sleep(pause)


def batch_errors(batch: str, settings: Settings) -> dict[str, dict[str, Any]]:
    """The errors the workers reported with failed statuses of ``batch`` (empty when Redis does
    not answer: the records still tell)."""
    try:
        with connect(settings) as client:
            return Batches(client, settings.celery.batch_ttl).errors(batch)
    except CoordinationError as exc:
        log.warning("cannot read the batch's errors: %s", exc.message)
        return {}
