"""The in-process driver: archive a plan's assets with a thread pool, no services needed."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archiver.errors import CoordinationError, StoreError, StoreFull, StoreReadOnly, class_of
from archiver.models import Asset, Record
from archiver.pipeline import Context, archive_asset, failure_record, fetch_asset

if TYPE_CHECKING:  # Redis is loaded only when a run takes claims
    from archiver.drivers.coordination import Claims

_TICK = 0.5  # seconds: how often records whose segment got written are reported, at least

# Store errors after which no further asset can be archived: the run stops with a summary.
STOPS_THE_RUN = (StoreFull, StoreReadOnly)


def _stop_error(record: Record) -> StoreError | None:
    """The error that stops the run, when ``record`` failed with one."""
    error = record.error or {}
    cls = class_of(error)
    return cls(str(error.get("message", ""))) if issubclass(cls, STOPS_THE_RUN) else None


@dataclass
class RunSummary:
    """Counts of one run: assets by final status, bytes stored, wall time."""

    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    recovered: int = 0  # archived from a Wayback Machine capture, the original being gone
    elapsed: float = 0.0
    # Set when the run stopped early because the store cannot take writes (full, read-only):
    # the error, and how many assets were not attempted.
    stopped: StoreError | None = None
    not_attempted: int = 0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.statuses["failed"]

    def add(self, record: Record) -> None:
        self.statuses[record.status] += 1
        if record.status == "archived":
            self.bytes += record.size or 0
            self.recovered += record.route == "wayback"
        if record.error:
            self.errors[str(record.error.get("code"))] += 1

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "archived": self.statuses["archived"],
            "failed": self.statuses["failed"],
            "skipped": self.statuses["skipped"],
            "recovered": self.recovered,
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 3),
            "errors": dict(self.errors),
            **({"stopped": self.stopped.code, "not_attempted": self.not_attempted}
               if self.stopped is not None else {}),
        }


def run(
    assets: Sequence[Asset] | Iterable[Asset],
    ctx: Context,
    *,
    concurrency: int | None = None,
    on_record: Callable[[Record], None] | None = None,
    recorded: Container[str] = frozenset(),
    claims: Claims | None = None,
    backlog: int | None = None,
) -> RunSummary:
    """Archive every asset (which the caller's plan found not archived) with ``concurrency``
    threads; ``recorded`` holds the ids that have a record already (failed ones), the others
    are saved create-only. ``on_record`` is called (from the calling thread) with each Record
    as it completes. At most 2x concurrency assets (or ``backlog``) are in flight, so memory
    does not grow with the plan's size.

    When the store cannot take writes (StoreFull, StoreReadOnly), the assets in flight end
    with that error (their records are saved when the store still takes them), nothing more
    is started, and the summary says why (``stopped``) and how many were not attempted.

    With ``claims`` (a fleet's Redis), each asset is archived under the same claim the workers
    take, and the manifest is looked at once the claim is held: an asset a worker archived
    meanwhile is not fetched again.

    Within ``ctx.manifest.batched()`` records are written in segments: a record is counted
    and reported only once its segment is written (``log.durable()``), and the run ends by
    writing the last one, so nothing reported can be lost to a crash."""
    workers = max(1, concurrency or ctx.settings.runner.concurrency)
    taken = max(workers, backlog or workers * 2)  # assets taken from ``assets`` at most
    summary = RunSummary()
    started = time.monotonic()
    log = ctx.manifest.log
    unreported: list[tuple[int, Record]] = []  # records staged up to a ticket, not durable

    def report(record: Record) -> None:  # always on the calling thread
        summary.add(record)
        if on_record is not None:
            on_record(record)

    def done(record: Record) -> None:
        if log is None:
            report(record)
        else:
            unreported.append((log.staged(), record))

    def report_durable(final: bool = False) -> None:
        if log is None or not unreported:
            return
        if final:
            log.flush()
        upto = log.durable()
        n = 0
        while n < len(unreported) and unreported[n][0] <= upto:
            report(unreported[n][1])
            n += 1
        del unreported[:n]

    def attempt(asset: Asset) -> Record:
        try:
            if claims is not None:
                return claimed(asset, ctx, claims)
            return fetch_asset(asset, ctx, fresh=asset.id not in recorded)
        except STOPS_THE_RUN as exc:
            # Not even the record could be written: report the failure, save nothing.
            return failure_record(asset, exc)

    def stop(record: Record) -> bool:
        if summary.stopped is None:
            summary.stopped = _stop_error(record)
        return summary.stopped is not None

    pending: set[Future[Record]] = set()
    cancelled = 0
    # Finished futures, put there by their done callback (``concurrent.futures.wait`` set up
    # and took down a waiter on every pending future each time one finished). The main thread
    # is woken once ``need`` have finished, not for each: half the assets queued beyond the
    # running ones (the workers never run dry), one when records are reported as they come.
    finished: queue.SimpleQueue[Future[Record]] = queue.SimpleQueue()
    wake = threading.Event()
    batch = 1 if log is None else max(1, (taken - workers) // 2)
    need = [1]

    def finish(fut: Future[Record]) -> None:
        finished.put(fut)
        if finished.qsize() >= need[0]:
            wake.set()

    def collect() -> None:
        nonlocal cancelled
        need[0] = max(1, min(batch, len(pending)))
        if finished.qsize() < need[0]:
            wake.wait(_TICK)
        wake.clear()  # before draining: a future put after this sets it again
        try:
            while True:
                fut = finished.get_nowait()
                pending.discard(fut)
                if not fut.cancelled():
                    record = fut.result()
                    done(record)
                    if stop(record):
                        cancelled += sum(1 for other in pending if other.cancel())
        except queue.Empty:
            pass
        report_durable()

    remaining = iter(assets)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive") as pool:
        for asset in remaining:
            while summary.stopped is None and len(pending) >= taken:
                collect()
            if summary.stopped is not None:
                summary.not_attempted += 1  # this asset, taken from the iterator
                break
            fut = pool.submit(attempt, asset)
            pending.add(fut)
            fut.add_done_callback(finish)
        while pending:
            collect()
    report_durable(final=True)
    if summary.stopped is not None:
        summary.not_attempted += cancelled + sum(1 for _ in remaining)
    summary.elapsed = time.monotonic() - started
    return summary


def claimed(asset: Asset, ctx: Context, claims: Claims) -> Record:
    """Archive ``asset`` holding its claim, waiting while a worker holds it (a live holder
    releases it when done; a dead one's lease lapses within ``claim_ttl``)."""
    try:
        while (lease := claims.acquire(asset.id)) is None:
            time.sleep(min(claims.seconds_left(asset.id), claims.ttl / 4)
                       + random.uniform(0.05, 0.5))
    except CoordinationError as exc:
        # Redis went away: not fetched (a worker may be at it), not recorded (a worker's record
        # must not be overwritten); the next run plans it again.
        return failure_record(asset, exc)
    try:
        return archive_asset(asset, ctx)  # looks at the manifest first
    finally:
        with suppress(CoordinationError):  # not released: the lease lapses on its own
            lease.release()
