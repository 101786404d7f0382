"""The in-process driver: archive a plan's assets with a thread pool, no services needed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field

from archiver.models import Asset, Record
from archiver.pipeline import Context, archive_asset


@dataclass
class RunSummary:
    """Counts of one run: assets by final status, bytes stored, wall time."""

    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    elapsed: float = 0.0

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
        if record.error:
            self.errors[str(record.error.get("code"))] += 1

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "archived": self.statuses["archived"],
            "failed": self.statuses["failed"],
            "skipped": self.statuses["skipped"],
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 3),
            "errors": dict(self.errors),
        }


def run(
    assets: Sequence[Asset] | Iterable[Asset],
    ctx: Context,
    *,
    concurrency: int | None = None,
    on_record: Callable[[Record], None] | None = None,
    recorded: Container[str] = frozenset(),
) -> RunSummary:
    """Archive every asset (which the caller's plan found not archived) with ``concurrency``
    threads; ``recorded`` holds the ids that have a record already (failed ones), the others
    are saved create-only. ``on_record`` is called (from the calling thread) with each Record
    as it completes. At most 2x concurrency assets are in flight, so memory does not grow with
    the plan's size."""
    workers = max(1, concurrency or ctx.settings.runner.concurrency)
    summary = RunSummary()
    started = time.monotonic()

    def done(record: Record) -> None:  # always on the calling thread
        summary.add(record)
        if on_record is not None:
            on_record(record)

    pending: set[Future[Record]] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive") as pool:
        for asset in assets:
            if len(pending) >= workers * 2:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(fut.result())
            pending.add(pool.submit(archive_asset, asset, ctx, check_existing=False,
                                    fresh=asset.id not in recorded))
        for fut in as_completed(pending):
            done(fut.result())
    summary.elapsed = time.monotonic() - started
    return summary
