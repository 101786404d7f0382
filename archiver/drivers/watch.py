"""What a worker's main process does so that nothing it holds is lost with it.

- ``SweeperThread``: every worker sweeps for assets lost with a dead worker (``sweep``), and
  takes its turn at getting back the batches a Redis that lost its data lost (``journal``).
- ``Received``: a message the main process received and no pool process has started yet (it
  waits for a free slot, for its retry's countdown, or because of the prefetch) is known to
  nobody but the broker's unacked set, which gives it back only after the visibility timeout.
  So the main process marks its asset in flight as it receives it (``task_received``), with a
  deadline of ``claim_ttl`` past its countdown, and its heartbeat pushes the deadline back
  until a pool process starts the task (whose own heartbeat takes over: ``Inflight.started``)
  or the message is acknowledged. A main process SIGKILLed with messages in hand stops
  renewing: they are past their deadline ``claim_ttl`` later, unclaimed, and the next sweep
  publishes them again, within ``claim_ttl + sweep_interval`` like any other lost asset. So
  does a message the consumer dropped unstarted when its connection to the broker was lost
  (it gives them back to a Redis that may have lost them, or be down).
- ``ArchiveRequest``: the parent of a prefork child that died with its task frees the child's
  claim at once (``sweep.release_dead``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis
from billiard.exceptions import WorkerLostError  # type: ignore[import-untyped]
from celery import Celery
from celery.worker import state as worker_state
from celery.worker.request import Request

from archiver.drivers.coordination import Claims, connect
from archiver.drivers.journal import Rescue
from archiver.drivers.sweep import Inflight, Sweeper, SweeperThread, release_dead
from archiver.errors import ArchiverError
from archiver.settings import Settings, load_settings
from archiver.store import open_store
from archiver.store.base import Store

log = logging.getLogger(__name__)


class Received:
    """In-flight entries for the messages this main process holds unstarted (see above)."""

    def __init__(self, inflight: Inflight, settings: Settings) -> None:
        self.inflight = inflight
        # The broker gives an unacknowledged message back by then anyway.
        self.limit = settings.celery.effective_visibility_timeout

    def hold(self, request: Any) -> None:
        """Mark the asset of a received task in flight, renewed until the task starts."""
        args = tuple(request.args or ())
        batch = args[1] if len(args) > 1 else (request.kwargs or {}).get("batch")
        if not batch or not args or not isinstance(args[0], dict):
            return
        asset: dict[str, Any] = args[0]
        eta = request.eta
        wait = max(0.0, (eta - datetime.now(UTC)).total_seconds()) if eta is not None else 0.0
        received = time.monotonic()
        try:
            self.inflight.mark(batch, asset, wait + self.inflight.grace, "extend")
        except ArchiverError as exc:  # Redis is down: the heartbeat marks it later
            log.debug("%s not marked in flight on receipt: %s", asset.get("origin"), exc.message)
        name = f"received:{request.id}"
        renewer = self.inflight.claims.renewer

        def renew() -> None:
            now = time.monotonic()
            if request.time_start or request.acknowledged or now > received + self.limit:
                renewer.remove(name)  # started (its process renews now), done, or given back
            elif request.id not in worker_state.requests:
                # Dropped unstarted when the connection to the broker was lost (the consumer
                # gives its held messages back, into a Redis that may have lost them): not
                # renewed, the entry lapses and the sweepers publish the asset again.
                renewer.remove(name)
            elif now >= received + wait:  # before, the deadline set above still holds
                self.inflight.mark(batch, asset, self.inflight.grace, "extend")

        renewer.add(name, renew)


_sweepers: list[SweeperThread] = []
_stores: list[Store] = []
_received: list[Received] = []


def start_watching(app: Celery) -> None:
    """``worker_ready``: start the sweeper (and the rescue of batches Redis lost, from their
    journals in the store) and the marking of received messages."""
    settings = load_settings()
    client = connect(settings)
    store = open_store(settings.store)
    _stores.append(store)
    rescue = Rescue(client, settings, store, app)
    _sweepers.append(SweeperThread(Sweeper(client, settings, app), rescue).start())
    _receive(settings, client)


def _receive(settings: Settings, client: redis.Redis) -> Received:
    if not _received:
        _received.append(Received(Inflight(Claims(client, settings.celery.claim_ttl),
                                           settings), settings))
    return _received[0]


def stop_watching(**_: Any) -> None:
    """``worker_shutdown``."""
    while _sweepers:
        _sweepers.pop().stop()
    while _stores:
        _stores.pop().close()


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    """``task_received`` (the main process, before the task is reserved or scheduled)."""
    if request is None:
        return
    try:
        if not _received:  # a message before worker_ready: its own client
            settings = load_settings()
            _receive(settings, connect(settings))
        _received[0].hold(request)
    except Exception:  # never let a bookkeeping error stop the consumer
        log.exception("received task %s not marked in flight", getattr(request, "id", "?"))


class ArchiveRequest(Request):  # type: ignore[misc]
    """In the worker's main process: when a prefork child dies with the task (SIGKILL, the OOM
    killer), its claim is freed before the message is requeued, instead of lapsing with its
    lease ``claim_ttl`` later."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # unwrapped from billiard's ExceptionWithTraceback
        if isinstance(exc, WorkerLostError) and self.worker_pid and _sweepers and self.args:
            try:
                if release_dead(_sweepers[0].sweeper.client, self.args[0], self.worker_pid):
                    log.warning("pool process %s died; released its claim", self.worker_pid)
            except Exception as error:  # best effort: the lease lapses on its own
                log.warning("claim of dead pool process %s not released: %s",
                            self.worker_pid, error)
        return super().on_failure(exc_info, send_failed_event, return_ok)
