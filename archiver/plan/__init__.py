"""Plan: what to fetch and how. ``assets`` turns scanned references into unique assets,
``make_plan`` splits them by what the manifest holds, ``routes`` gives each the URLs it may be
fetched from, in order.

Pure: data in, data out. The same plan drives ``archive --dry-run`` (``Plan.describe``), the
in-process runner and ``enqueue``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from archiver.models import ArticleScan, Asset, asset_id
from archiver.plan.assets import collect_assets
from archiver.plan.routes import Route, plan_routes
from archiver.settings import Settings

__all__ = ["Plan", "Route", "collect_assets", "gc_paused", "make_plan", "plan_routes",
           "plan_scans"]


class Plan:
    """Every unique asset, split into those still to fetch and those already archived.

    ``todo`` is made at once; ``assets`` and ``archived`` (every asset, merged across the
    articles: a re-run's hundreds of thousands) only when asked for (``plan_scans``)."""

    def __init__(self, assets: Sequence[Asset] | Callable[[], Sequence[Asset]],
                 todo: Sequence[Asset], archived: Sequence[Asset] | None = None,
                 retrying: int = 0, recorded: frozenset[str] = frozenset(), *,
                 counts: tuple[int, int] | None = None) -> None:
        """``assets``: every asset in first-seen order, or what makes them; ``archived``: the
        assets not in ``todo`` (default); ``counts``: (assets, archived) when ``assets`` is
        made later."""
        self._make = assets if callable(assets) else None
        self._assets = None if callable(assets) else tuple(assets)
        self.todo = tuple(todo)
        self._archived = None if archived is None else tuple(archived)
        self.retrying = retrying  # assets in ``todo`` whose last record is failed
        self.recorded = recorded  # ids in ``todo`` that already have a record
        if counts is None:
            counts = (len(self.assets), len(self.archived))
        self._counts = counts

    @property
    def assets(self) -> tuple[Asset, ...]:
        if self._assets is None:
            assert self._make is not None
            self._assets = tuple(self._make())
        return self._assets

    @property
    def archived(self) -> tuple[Asset, ...]:
        if self._archived is None:
            todo = {asset.origin for asset in self.todo}
            self._archived = tuple(a for a in self.assets if a.origin not in todo)
        return self._archived

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
            "assets": self._counts[0],
            "archived": self._counts[1],
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
    return Plan(all_assets, todo, done, retrying, frozenset(recorded))


def plan_scans(scans: Sequence[ArticleScan],
               statuses: Mapping[str, str] | Callable[[str], str | None]) -> Plan:
    """``make_plan(collect_assets(scans), statuses)``, the same plan, made in one pass over
    the references that merges only the assets to fetch: the archived ones (all of them on
    a re-run of unchanged articles) are merged when ``assets`` or ``archived`` is read.
    ``statuses``: asset id -> status, as a mapping or its lookup (``Rows.status_of``)."""
    get = statuses.get if isinstance(statuses, Mapping) else statuses
    status_of: dict[str, str | None] = {}
    for scan in scans:
        for ref in scan.references:
            if ref.origin not in status_of:
                status_of[ref.origin] = get(asset_id(ref.origin))
    wanted = {origin for origin, status in status_of.items() if status != "archived"}
    todo = collect_assets(scans, wanted) if wanted else []
    recorded = frozenset(asset.id for asset in todo if status_of[asset.origin] is not None)
    retrying = sum(1 for asset in todo if status_of[asset.origin] == "failed")
    return Plan(lambda: collect_assets(scans), todo, None, retrying, recorded,
                counts=(len(status_of), len(status_of) - len(wanted)))


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
