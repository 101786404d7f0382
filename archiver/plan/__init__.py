"""Plan: what to fetch and how. ``assets`` turns scanned references into unique assets,
``make_plan`` splits them by what the manifest holds, ``routes`` gives each the URLs it may be
fetched from, in order.

Pure: data in, data out. The same plan drives ``archive --dry-run`` (``Plan.describe``), the
in-process runner and ``enqueue``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from archiver.models import Asset
from archiver.plan.assets import collect_assets
from archiver.plan.routes import Route, plan_routes
from archiver.settings import Settings

__all__ = ["Plan", "Route", "collect_assets", "gc_paused", "make_plan", "plan_routes"]


@dataclass(frozen=True)
class Plan:
    """Every unique asset, split into those still to fetch and those already archived."""

    assets: tuple[Asset, ...]
    todo: tuple[Asset, ...]
    archived: tuple[Asset, ...]
    retrying: int  # assets in ``todo`` whose last record is failed
    recorded: frozenset[str] = frozenset()  # ids in ``todo`` that already have a record

    def describe(self, settings: Settings) -> Iterator[dict[str, Any]]:
        """Each asset as the dry run shows it: its fields and id, ``status`` (``archived`` or
        ``todo``) and the routes an asset to fetch would be tried by, in order."""
        done = {asset.id for asset in self.archived}
        for asset in self.assets:
            todo = asset.id not in done
            routes = plan_routes(asset, settings) if todo else []
            yield {**asset.to_dict(), "id": asset.id, "status": "todo" if todo else "archived",
                   "routes": [route.to_dict() for route in routes]}

    @property
    def counts(self) -> dict[str, int]:
        return {
            "assets": len(self.assets),
            "archived": len(self.archived),
            "todo": len(self.todo),
            "retrying": self.retrying,
        }


def make_plan(assets: Iterable[Asset], statuses: Mapping[str, str]) -> Plan:
    """Split ``assets`` by manifest status (asset id -> status): ``archived`` ones are done;
    failed, skipped and unknown ones are fetched (failed ones are retried on every run)."""
    all_assets = tuple(assets)
    todo: list[Asset] = []
    done: list[Asset] = []
    recorded: set[str] = set()
    retrying = 0
    for asset in all_assets:
        status = statuses.get(asset.id)
        if status == "archived":
            done.append(asset)
            continue
        todo.append(asset)
        if status is not None:
            recorded.add(asset.id)
            retrying += status == "failed"
    return Plan(all_assets, tuple(todo), tuple(done), retrying, frozenset(recorded))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off within: planning makes hundreds of thousands of
    objects that all live on (scans, assets, index rows), and every full collection walked
    all of them again (a third of a 10,000-article re-run's CPU). Reference counting still
    frees what is dropped; only cycles made within wait for the collector, on again after
    (unless it was off before)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
