"""The in-process archive job: scan -> plan -> run -> article manifests and index.

``archiver archive`` and the benchmarks call this one function, so what is measured is what
users run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from archiver.drivers.runner import RunSummary, run
from archiver.manifest import Manifest
from archiver.models import ArticleScan, Record
from archiver.pipeline import build_context
from archiver.plan import Plan, collect_assets, make_plan
from archiver.scan import scan_paths
from archiver.settings import Settings
from archiver.store import open_store
from archiver.store.base import Store


@dataclass
class JobResult:
    """What one job did: the scans, the plan, the run's summary and seconds per phase."""

    scans: list[ArticleScan]
    plan: Plan
    summary: RunSummary
    phases: dict[str, float] = field(default_factory=dict)


def plan_job(paths: Sequence[str], settings: Settings,
             store: Store | None = None) -> tuple[list[ArticleScan], Plan, Manifest]:
    """Scan ``paths`` and plan against the manifest of the configured store. The manifest is
    listed in a thread while the articles are scanned: one waits on the network, the other
    on the CPU."""
    manifest = Manifest(store or open_store(settings.store.url, settings.store))
    articles = scan_paths(list(paths), settings.scan)  # a missing path raises here, first
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan") as pool:
        statuses = pool.submit(manifest.statuses)
        scans = list(articles)
        return scans, make_plan(collect_assets(scans), statuses.result()), manifest


def archive_paths(
    paths: Sequence[str],
    settings: Settings,
    *,
    store: Store | None = None,
    on_plan: Callable[[list[ArticleScan], Plan], None] | None = None,
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

    the_store = store or open_store(settings.store.url, settings.store)
    scans, plan, manifest = plan_job(paths, settings, the_store)
    lap("plan")
    if on_plan is not None:
        on_plan(scans, plan)
    # One Manifest for planning, saving and the index, so its cached summaries stay true.
    ctx = build_context(settings, store=the_store, manifest=manifest)
    try:
        summary = run(plan.todo, ctx, on_record=on_record, recorded=plan.recorded)
    finally:
        ctx.close()
    lap("run")
    if summary.stopped is None:  # a store that cannot take writes would refuse these too;
        manifest.write_articles(scans)  # the next run writes them from the records
        manifest.build_index()
    lap("manifest")
    return JobResult(scans, plan, summary, phases)
