"""The Celery app and its two tasks: transport around ``pipeline.archive_asset``.

``celery -A archiver.drivers.tasks worker`` finds ``app``. Its configuration is built lazily from
``load_settings()`` (``ARCHIVER_CONFIG`` and ``ARCHIVER_*``), the same settings the CLI reads,
so a fleet and its enqueuers agree on broker, store, queues, limits and host overrides. The
enqueuer builds its own app from the settings it was given (``make_app(settings)``) and sends
by task name.

Delivery: acks late and reject on worker loss, so a killed worker's message comes back; a
claim in Redis makes sure only one worker archives an asset at a time and the manifest makes a
second delivery a no-op; a delivery counter fails an asset that keeps killing workers.

No message is dropped because a dependency blinked: while Redis or the store does not answer
(or take writes), the asset is retried with backoff (``outage_backoff_max``), without limit,
not counting the retry or the delivery; a retry or a final status that cannot be written to
Redis waits for it (``outage_wait``), then the message is given back unacknowledged. Anything
else that cannot complete ends with a ``failed`` record (when the store takes it) and a failed
status in its batch, with the error, so ``enqueue --wait`` always finishes.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import (
    task_received,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from archiver.drivers.coordination import (
    Batches,
    Claims,
    Deliveries,
    RedisHostLimiter,
    connect,
)
from archiver.drivers.delivery import reschedule, when_back
from archiver.drivers.fleet import announce_store, stop_announcing, store_identity
from archiver.drivers.startup import check_worker, refuse_to_start
from archiver.drivers.sweep import Inflight
from archiver.drivers.watch import ArchiveRequest, on_received, start_watching, stop_watching
from archiver.errors import (
    ArchiverError,
    CoordinationError,
    Redelivered,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
    TimedOut,
    WrongStore,
    class_of,
)
from archiver.fetch.retry import backoff as retry_backoff
from archiver.models import Asset, Kind, Record
from archiver.pipeline import Context, archive_asset, build_context, failure_record
from archiver.settings import Settings, load_settings
from archiver.store import open_store

log = logging.getLogger(__name__)

MEDIA_TASK = "archiver.archive_media"
VIDEO_TASK = "archiver.archive_video"
# Errors of a dependency, not of the asset: retried until it is back, never counted. A store
# that is full or read-only is one too (nothing is fetched while it refuses writes).
OUTAGES = (CoordinationError, StoreUnavailable, StoreFull, StoreReadOnly)


def task_for(kind: Kind) -> str:
    """The task for an asset kind: videos apart, they run for minutes."""
    return VIDEO_TASK if kind == "video" else MEDIA_TASK


def queue_for(kind: Kind, settings: Settings) -> str:
    """The queue of the task for an asset kind (as ``celery_config``'s routes say)."""
    c = settings.celery
    return c.video_queue if task_for(kind) == VIDEO_TASK else c.media_queue


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting archiver relies on, derived from the one settings object."""
    c = settings.celery
    return {
        "broker_url": c.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Longer than the hard limit plus the longest retry countdown (validated in
            # settings): a shorter one hands running or waiting messages to a second worker.
            "visibility_timeout": c.effective_visibility_timeout,
            # How often live workers give back a dead worker's unacked messages.
            "unacked_restore_interval": c.restore_interval,
            "unacked_restore_throttle": 1,
        },
        "result_backend": None,
        "task_ignore_result": True,  # the manifest is the result
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": c.prefetch_multiplier,
        "task_default_queue": c.media_queue,
        "task_create_missing_queues": True,
        "task_routes": {MEDIA_TASK: {"queue": c.media_queue},
                        VIDEO_TASK: {"queue": c.video_queue}},
        "task_annotations": {
            MEDIA_TASK: {"soft_time_limit": c.media_soft_time_limit,
                         "time_limit": c.media_time_limit},
            VIDEO_TASK: {"soft_time_limit": c.video_soft_time_limit,
                         "time_limit": c.video_time_limit},
        },
        "worker_hijack_root_logger": False,
    }


@dataclass
class Worker:
    """What one worker process opens once and its threads share; ``close`` gives it back."""

    settings: Settings
    ctx: Context
    claims: Claims
    deliveries: Deliveries
    batches: Batches
    inflight: Inflight
    store: str  # the identity of the store it serves (``fleet.store_identity``)

    @classmethod
    def open(cls, settings: Settings) -> Worker:
        """The store, the fetchers and the Redis client of one worker process."""
        client = connect(settings)
        c = settings.celery
        store = open_store(settings.store)
        claims = Claims(client, c.claim_ttl)
        return cls(
            settings=settings,
            ctx=build_context(settings, store, limiter=RedisHostLimiter(client, settings),
                              passthrough=(SoftTimeLimitExceeded,)),
            claims=claims,
            deliveries=Deliveries(client, c.effective_visibility_timeout * (c.max_deliveries
                                                                            + 1)),
            batches=Batches(client, c.batch_ttl),
            inflight=Inflight(claims, settings),
            store=store_identity(settings.store),
        )

    def close(self) -> None:
        self.ctx.close()
        self.ctx.store.close()
        self.claims.client.close()


_workers: dict[int, Worker] = {}
_workers_lock = threading.Lock()


def worker_state(settings: Settings | None = None) -> Worker:
    """This process's Worker, built on first use; keyed by pid because prefork children must
    not share the parent's Redis and HTTP connections."""
    pid = os.getpid()
    with _workers_lock:
        state = _workers.get(pid)
        if state is None:
            state = _workers[pid] = Worker.open(settings or load_settings())
        return state


def close_worker_state(**_: Any) -> None:
    """When the worker (a prefork child, or the main process of a threads or solo pool) shuts
    down, close what ``worker_state`` opened."""
    with _workers_lock:
        state = _workers.pop(os.getpid(), None)
    if state is not None:
        state.close()


worker_process_shutdown.connect(close_worker_state, weak=False)
worker_shutdown.connect(close_worker_state, weak=False)


@dataclass(frozen=True)
class Outcome:
    """What one delivery did: a final record, or a reason to run again after ``delay``."""

    record: Record | None
    # "busy" (another worker holds the claim), "outage" (Redis or the store did not answer:
    # neither counts as a retry of the asset) or "transient" (the asset's own failure).
    retry: str | None = None
    delay: float = 0.0


def backoff(settings: Settings, retries: int) -> float:
    """Seconds before the task's retry number ``retries + 1`` (``fetch.retry.backoff`` with the
    ``celery`` section's base and cap)."""
    c = settings.celery
    return retry_backoff(retries + 1, c.retry_backoff, c.retry_backoff_max)


def outage_backoff(settings: Settings, outages: int) -> float:
    """Seconds before the next try while a dependency is down (capped lower: once it is back,
    the fleet converges within ``outage_backoff_max``)."""
    c = settings.celery
    return retry_backoff(outages + 1, c.retry_backoff, c.outage_backoff_max)


def handle(asset: Asset, w: Worker, retries: int, outages: int = 0) -> Outcome:
    """Claim, count the delivery, archive, release. Plain function: the task only maps the
    outcome to Celery, so this is tested without a broker. ``retries``: the asset's own
    failures so far; ``outages``: retries for busy claims and dependency outages. Raises the
    ArchiverError that kept it from saving a record (Redis or the store down, most often)."""
    lease = w.claims.acquire(asset.id)
    if lease is None:
        # The holder may be alive (it will finish; our rerun then finds the record) or dead
        # with its lease still running (our rerun then takes over). Acking instead would lose
        # the asset in the second case, since the holder's own message may already be gone.
        # Look again within a quarter lease: a live holder is usually done by then.
        left = w.claims.seconds_left(asset.id)
        delay = min(left, w.claims.ttl / 4) + random.uniform(0.1, 1.0)
        return Outcome(None, "busy", delay)
    try:
        started = w.deliveries.start(asset.id)
        try:
            if started > w.settings.celery.max_deliveries:
                record = _poisoned(asset, w, started)
            else:
                try:
                    # A redelivered message may find the asset archived: archive_asset looks.
                    record = archive_asset(asset, w.ctx)
                except SoftTimeLimitExceeded:
                    # Out of time is transient (a slow host, a big file): record, retry later.
                    limit = TimedOut("the task's soft time limit passed while archiving")
                    record = w.ctx.manifest.save(failure_record(asset, limit))
        except ArchiverError:
            # An error that reached us is not a lost worker: this delivery is over, uncounted.
            with suppress(CoordinationError):
                w.deliveries.finish(asset.id)
            raise
        w.deliveries.finish(asset.id)
    finally:
        lease.release()  # now, or once Redis answers again
    error = record.error or {}
    if record.status != "failed":
        return Outcome(record)
    if issubclass(class_of(error), OUTAGES):
        # Redis or the store blinked during the fetch (a host slot, a put): not the asset's.
        return Outcome(record, "outage", outage_backoff(w.settings, outages))
    if class_of(error).retryable and retries < w.settings.celery.max_retries:
        # A host the breaker holds down is tried again after its cool-down, not before (capped
        # like any countdown, which the visibility timeout must outlast).
        retry_in = min(float((error.get("details") or {}).get("retry_in") or 0.0),
                       w.settings.celery.retry_backoff_max)
        return Outcome(record, "transient", max(backoff(w.settings, retries), retry_in))
    return Outcome(record)


def _poisoned(asset: Asset, w: Worker, started: int) -> Record:
    log.error("asset %s started %d times without finishing; failing it", asset.origin, started)
    error = Redelivered(f"worker lost {started - 1} times while archiving")
    return w.ctx.manifest.save(failure_record(asset, error))


def run_task(task: Task, asset_data: dict[str, Any], batch: str | None,
             store: str | None = None, outages: int = 0) -> str:
    """The body of both tasks: check the store, decode, handle, map the outcome to a retry or a
    final status reported to ``batch``. ``outages``: the retries so far that were not the
    asset's fault (busy claims, dependency outages), not counted in ``max_retries``."""
    w = worker_state()
    asset = Asset.from_dict(asset_data)
    if store is not None and store != w.store:
        # Another fleet's task: archiving it into our store would report a false success.
        error = WrongStore(f"task for store {store}, this worker serves {w.store}",
                           task_store=store, worker_store=w.store)
        log.error("refusing %s: %s", asset.origin, error.message)
        _report(w, batch, asset.id, "failed", error)
        return "failed"
    retries = max(0, int(task.request.retries or 0) - outages)
    try:
        outcome = handle(asset, w, retries, outages)
    except OUTAGES as exc:
        log.warning("%s: %s; retrying once it is back", asset.origin, exc.message)
        reschedule(task, w.settings, outage_backoff(w.settings, outages), outages + 1)
    except ArchiverError as exc:
        # Saving the record failed for another reason (a full store, a missing bucket).
        if exc.retryable and retries < w.settings.celery.max_retries:
            reschedule(task, w.settings, backoff(w.settings, retries), outages)
        return _give_up(asset, w, batch, exc)
    if outcome.retry in ("busy", "outage"):
        # Waiting for another worker or for a dependency is not a failure of this asset.
        reschedule(task, w.settings, outcome.delay, outages + 1)
    if outcome.retry == "transient":
        reschedule(task, w.settings, outcome.delay, outages)
    assert outcome.record is not None
    _report(w, batch, asset.id, outcome.record.status)
    return outcome.record.status


def _give_up(asset: Asset, w: Worker, batch: str | None, exc: ArchiverError) -> str:
    """End an asset that cannot complete with a ``failed`` record (when the store takes it) and
    a failed status in its batch that carries the error, so nobody waits for it."""
    log.error("giving up on %s: %s (%s)", asset.origin, exc.message, exc.code)
    try:
        w.ctx.manifest.save(failure_record(asset, exc))
    except ArchiverError as save_error:
        log.error("cannot record the failure of %s either: %s", asset.origin, save_error.message)
    _report(w, batch, asset.id, "failed", exc)
    return "failed"


def _report(w: Worker, batch: str | None, asset_id: str, status: str,
            error: ArchiverError | None = None) -> None:
    if batch:
        details = error.to_dict() if error is not None else None
        when_back(w.settings, f"report {asset_id}",
                   lambda: w.batches.report(batch, asset_id, status, details))


def _archive(self: Task, asset: dict[str, Any], batch: str | None = None,
             store: str | None = None, outages: int = 0) -> str:
    """Archive one asset (``Asset.to_dict()``) into ``store`` (its identity; None: not checked,
    as older enqueuers sent), reporting its final status to ``batch``; in flight for the
    sweepers meanwhile (``sweep``), a no-op when the batch has its status."""
    if not batch:
        return run_task(self, asset, batch, store, outages)
    with worker_state().inflight.started(batch, asset) as final:
        if final:
            log.info("%s: already %s in batch %s", asset.get("origin"), final, batch)
            return final
        return run_task(self, asset, batch, store, outages)


def _check_before_consuming(**_: Any) -> None:
    """A worker whose store is missing, denied or read-only exits at once with one line."""
    reason = check_worker()
    if reason is not None:
        refuse_to_start(reason)


worker_init.connect(_check_before_consuming, weak=False)
# Once it consumes, the worker announces the store it serves (``fleet``) on a heartbeat.
worker_ready.connect(announce_store, weak=False)
worker_shutdown.connect(stop_announcing, weak=False)



def _start_watching(**_: Any) -> None:
    """The main process sweeps for lost assets and marks the messages it holds unstarted."""
    start_watching(app)


worker_ready.connect(_start_watching, weak=False)
worker_shutdown.connect(stop_watching, weak=False)
task_received.connect(on_received, weak=False)


def make_app(settings: Settings | None = None) -> Celery:
    """The Celery app: configured from ``settings``, or lazily from ``load_settings()``."""
    the_app = Celery("archiver", set_as_current=settings is None)
    if settings is None:
        the_app.add_defaults(lambda: celery_config(load_settings()))
    else:
        the_app.conf.update(celery_config(settings))

    # Retry bounds come from the worker's settings at run time (``run_task``), not from here:
    # max_retries=None, else Celery would stop at its default of 3 whatever the reason.
    for name in (MEDIA_TASK, VIDEO_TASK):
        the_app.task(bind=True, name=name, max_retries=None, Request=ArchiveRequest)(_archive)
    return the_app


app = make_app()
