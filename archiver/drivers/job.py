"""The jobs: one composition per command, each opening the store it works on and closing it.

``archive_paths`` (scan -> plan -> run in process -> article manifests and index) and
``enqueue_paths`` (scan -> plan -> article manifests -> send to the workers -> wait -> article
manifests and index) are what ``archiver archive`` and ``archiver enqueue`` run, and what the
benchmarks measure. The CLI only parses options and prints what these return.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from archiver.drivers.processes import Processes, processes_for
from archiver.drivers.runner import STOPS_THE_RUN, RunSummary, run
from archiver.errors import CoordinationError
from archiver.manifest import IndexStats, Manifest, Orphans
from archiver.manifest.early import EarlyArticles
from archiver.models import ArticleScan, Record
from archiver.pipeline import build_context
from archiver.plan import Plan, gc_paused, plan_scans
from archiver.plan.scancache import CacheStats, scan_cached
from archiver.settings import Settings
from archiver.store import open_store
from archiver.store.base import through_outages

if TYPE_CHECKING:  # the rewrite's and verify's code is imported by their jobs only
    from archiver.drivers.coordination import Claims
    from archiver.drivers.enqueue import Enqueued
    from archiver.rewrite import ArticleResult, Options
    from archiver.verify import VerifyReport

T = TypeVar("T")
OnPlan = Callable[[list[ArticleScan], Plan], None]
Failure = tuple[str, str, dict[str, Any]]  # status, origin, error of an asset not archived


@dataclass
class JobResult:
    """What one in-process job did: the scans, the plan, the run's summary, seconds per
    phase."""

    scans: list[ArticleScan]
    plan: Plan
    summary: RunSummary
    phases: dict[str, float] = field(default_factory=dict)
    # Why the run took no fleet claims although Redis is configured (``runner.claims``).
    claims_note: str | None = None


@dataclass
class EnqueueResult:
    """What one enqueue did: the scans, the plan, the batch sent and, when it waited, the final
    statuses counted (``None`` when it did not wait)."""

    scans: list[ArticleScan]
    plan: Plan
    sent: Enqueued
    counts: Counter[str] | None = None
    failures: list[Failure] = field(default_factory=list)  # of the batch, once waited for
    recovered: int = 0  # of the batch's archived assets, from a Wayback Machine capture

    @property
    def pending(self) -> int:
        """Assets sent that have no final status yet (all of them when it did not wait)."""
        return self.sent.enqueued - sum((self.counts or Counter()).values())


Sources = dict[tuple[str, str], bytes]  # (article, path) -> scan cache key of its bytes


def plan_paths(paths: Sequence[str], settings: Settings) -> tuple[list[ArticleScan], Plan]:
    """Scan ``paths`` and plan against the configured store's manifest (the dry run)."""
    with open_store(settings.store) as store:
        scans, plan, _, _ = _plan(paths, settings, Manifest(store))
        return scans, plan


Stale = list[tuple[str, float]]  # the markers of dead batching runs (stale_writers)


def _plan(paths: Sequence[str], settings: Settings, manifest: Manifest,
          writers: bool = False) -> tuple[list[ArticleScan], Plan, Sources, Stale | None]:
    """The manifest is listed in a thread while the articles are scanned: one waits on the
    network, the other on the CPU. Articles the scan cache holds are read but not parsed.
    With the scans and the plan, the key of each scan's bytes (``write_articles`` skips
    rebuilding the manifests of unchanged articles by it), and with ``writers`` the dead
    runs' markers, listed meanwhile in another thread (``Manifest.orphans`` takes them)."""
    stats = CacheStats()
    articles = scan_cached(list(paths), settings.scan, stats)  # a missing path raises here
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="plan") as pool, gc_paused():
        rows = pool.submit(manifest.summaries)  # compact: read by status_of, no dict made
        stale = pool.submit(manifest.stale_writers) if writers else None
        scans = list(articles)
        return (scans, plan_scans(scans, rows.result().status_of), stats.keys,
                stale.result() if stale is not None else None)


def archive_paths(
    paths: Sequence[str],
    settings: Settings,
    *,
    on_plan: OnPlan | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> JobResult:
    """Archive everything ``paths`` reference that is not archived yet, then write the
    per-article manifests and the index. ``on_plan`` sees the plan before any fetch (progress
    bars size themselves from it); ``on_record`` sees each record as it is saved."""
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 3)
        mark = now

    with open_store(settings.store) as store:
        # One Manifest for planning, saving and the index, so its cached summaries stay true.
        manifest = Manifest(store)
        scans, plan, sources, stale = _plan(paths, settings, manifest, writers=True)
        lap("plan")
        # Records go into segments, many to a request (S3) or to a file (a local store: two
        # files and their syncs per asset fewer); a run that died before writing its last
        # ones left objects behind, whose records are rebuilt instead of fetched.
        batch = bool(plan.todo)
        orphans = manifest.orphans(plan.todo, stale) if batch else Orphans()
        todo = [asset for asset in plan.todo if asset.id not in orphans.objects]
        # Beside a fleet (claims), records stay one file each: that is what workers read.
        with fleet_claims(settings) as (claims, note), ExitStack() as stack:
            # A large plan goes to several processes (runner.processes), forked now, before
            # this one starts a thread (a progress bar, the segment writer, the fetchers').
            count = processes_for(settings, len(todo)) if todo else 1
            procs = stack.enter_context(Processes(
                todo, settings, store, count, recorded=plan.recorded,
                claims=claims is not None)) \
                if count > 1 else None
            if on_plan is not None:
                on_plan(scans, plan)
            # Nothing to fetch, no fetchers: their HTTP client and TLS set-up cost a re-run of
            # thousands of archived articles a quarter of its time.
            ctx = stack.enter_context(build_context(settings, store, manifest=manifest)) \
                if batch and procs is None else None
            if batch and claims is None:
                with suppress(*STOPS_THE_RUN):  # no writer's marker: the run stops cleanly
                    stack.enter_context(manifest.batched())
            # On a remote store, the manifests of the articles whose assets are all recorded
            # are written while the others are fetched (manifest/early.py).
            early = stack.enter_context(EarlyArticles(
                store, manifest.summaries, scans, sources, {asset.id for asset in plan.todo})) \
                if manifest.log is not None and procs is None \
                and getattr(store, "parallel_list", False) else None
            seen = on_record if early is None else _both(early.recorded, on_record)
            recovered = [manifest.save(manifest.recovered(asset, orphans))
                         for asset in plan.todo if asset.id in orphans.objects]
            if procs is not None:
                summary = procs.run(manifest, store, on_record=on_record, claims=claims)
            else:
                summary = RunSummary() if ctx is None else run(
                    todo, ctx, on_record=seen, recorded=plan.recorded, claims=claims)
            written = early.finish() if early is not None else {}
        for record in recovered:  # written with the run's last segment
            summary.add(record)
            if on_record is not None:
                on_record(record)
        orphans.forget(manifest)
        lap("run")
        if summary.stopped is None:  # a store that cannot take writes would refuse these too;
            with gc_paused():  # else the next run does
                manifest.write_articles_and_index(scans, sources, written)
        lap("manifest")
    return JobResult(scans, plan, summary, phases, note)


def _both(first: Callable[[Record], None],
          then: Callable[[Record], None] | None) -> Callable[[Record], None]:
    def both(record: Record) -> None:
        first(record)
        if then is not None:
            then(record)
    return both


@contextmanager
def fleet_claims(settings: Settings) -> Iterator[tuple[Claims | None, str | None]]:
    """The fleet's asset claims for an in-process run, per ``runner.claims``, or None with the
    reason when Redis is configured but the run takes none ("auto" and Redis does not answer).
    "on" and no answer raises CoordinationError. No Redis is contacted unless "on", or "auto"
    with a broker or Redis URL configured."""
    mode = settings.runner.claims
    if mode == "off" or (mode == "auto" and not settings.redis_configured):
        yield None, None
        return
    from archiver.drivers.coordination import Claims, connect, guarded

    client = connect(settings, connect_timeout=2)
    try:
        guarded(client.ping)
    except CoordinationError as exc:
        client.close()
        if mode == "on":
            raise
        yield None, (f"Redis at {redis_location(settings)} does not answer ({exc.message}): "
                     "taking no asset claims; a fleet running now may fetch the same assets")
        return
    try:
        yield Claims(client, settings.celery.claim_ttl), None
    finally:
        client.close()


def redis_location(settings: Settings) -> str:
    """host:port/db of the coordination Redis, without credentials."""
    parts = urlsplit(settings.celery.coordination_url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path}" if parts.hostname else parts.path


def enqueue_paths(
    paths: Sequence[str],
    settings: Settings,
    *,
    wait: bool = False,
    timeout: float | None = None,
    on_plan: OnPlan | None = None,
    on_sent: Callable[[Enqueued], None] | None = None,
    on_progress: Callable[[Counter[str]], None] | None = None,
) -> EnqueueResult:
    """Send what ``paths`` reference and is not archived to the workers, as one batch, after
    writing the article manifests. With ``wait``, poll until every sent asset has a final
    status (or ``timeout`` seconds pass), then write the article manifests and the index again
    so that they see the workers' records. ``on_sent`` sees the batch as soon as it is sent,
    ``on_progress`` the counts at every poll."""
    from archiver.drivers.enqueue import batch_errors, enqueue_plan, wait_for

    with open_store(settings.store) as store:
        manifest = Manifest(store)
        scans, plan, sources, _ = _plan(paths, settings, manifest)
        if on_plan is not None:
            on_plan(scans, plan)
        manifest.write_articles(scans, sources)
        sent = enqueue_plan(plan, settings, store=store)
        if on_sent is not None:
            on_sent(sent)
        if not wait:
            return EnqueueResult(scans, plan, sent)
        ids = {asset.id for asset in plan.todo}
        counts = wait_for(sent.batch, sent.enqueued, settings, on_progress=on_progress,
                          timeout=timeout, manifest=manifest, assets=plan.todo)

        def finish() -> tuple[list[Failure], int]:
            manifest.invalidate()  # the workers wrote records meanwhile
            manifest.write_articles(scans, sources)
            manifest.build_index()
            return (manifest_failures(manifest, ids),
                    count_recovered(manifest.summaries(), ids))

        failures, recovered = through_outages(finish, settings.celery.outage_wait)
    # Failures no record of this store holds (another fleet's store, a missing bucket).
    origins = {asset.id: asset.origin for asset in plan.todo}
    reported = [("failed", origins.get(asset_id, asset_id), error)
                for asset_id, error in sorted(batch_errors(sent.batch, settings).items())]
    shown = {origin for _, origin, _ in reported}
    failures = [f for f in failures if f[1] not in shown] + reported
    return EnqueueResult(scans, plan, sent, counts, failures, recovered)


def build_index(settings: Settings, *, full: bool = False) -> IndexStats:
    """Compact the configured store's records into its index (``Manifest.build_index``)."""
    with open_store(settings.store) as store:
        return Manifest(store).build_index(full=full)


def verify(settings: Settings) -> VerifyReport:
    """Re-hash every archived object of the configured store against its record."""
    from archiver.verify import verify_store

    with open_store(settings.store) as store:
        return verify_store(store, Manifest(store))


def rewrite(paths: Sequence[str], settings: Settings, options: Options) -> Iterator[ArticleResult]:
    """Point the articles under ``paths`` at their archived copies (see ``rewrite_paths``),
    one result per article; the store stays open while the results are consumed."""
    from archiver.rewrite import rewrite_paths

    with open_store(settings.store) as store:
        yield from rewrite_paths(paths, settings, store, options)


def status(settings: Settings) -> tuple[dict[str, Any], list[Failure]]:
    """Queue depths, assets in flight, hosts paused (Redis), records by status (and how many
    archived ones were recovered from the Wayback Machine) and the assets not archived
    (manifest). Without Redis the manifest's part is still there, and the
    snapshot says ``"queue": "unreachable"``."""
    from archiver.drivers.coordination import connect, status_snapshot

    with open_store(settings.store) as store:
        manifest = Manifest(store)
        summaries = manifest.summaries()
        statuses = Counter(row["status"] for row in summaries.values())
        recovered = count_recovered(summaries)
        failures = manifest_failures(manifest)
    try:
        with connect(settings) as client:
            snap = status_snapshot(client, settings)
    except CoordinationError as exc:
        snap = {"queue": "unreachable", "error": exc.message}
    snap["manifest"] = {k: statuses[k] for k in ("archived", "failed", "skipped")}
    snap["manifest"]["recovered"] = recovered  # archived from a Wayback Machine capture
    return snap, failures


def count_recovered(summaries: Mapping[str, Mapping[str, Any]],
                    ids: Collection[str] | None = None) -> int:
    """Archived assets (of ``ids``, else all) whose bytes came from a Wayback Machine capture
    (``route: "wayback"``): what status and the summaries count apart as recovered."""
    return sum(1 for asset, row in summaries.items() if (ids is None or asset in ids)
               and row.get("status") == "archived" and row.get("route") == "wayback")


def manifest_failures(manifest: Manifest, ids: Collection[str] | None = None,
                      read: int = 200) -> list[Failure]:
    """``(status, origin, error)`` of the failed and skipped assets in the manifest (of ``ids``
    only, when given), by origin. The first ``read`` records are read for their reason; the
    others give their error code from the index."""
    out: list[Failure] = []
    rows = sorted(manifest.summaries().items(), key=lambda item: str(item[1].get("origin")))
    for asset_id, row in rows:
        if row.get("status") == "archived" or (ids is not None and asset_id not in ids):
            continue
        error: dict[str, Any] = {"code": row.get("error")}
        if read > 0:
            read -= 1
            record = manifest.load(asset_id)
            error = dict(record.error or error) if record is not None else error
        out.append((str(row.get("status")), str(row.get("origin") or asset_id), error))
    return out
