"""Plan: turn scanned references into unique assets and split them by what the manifest holds.

Pure: data in, data out. The same plan drives ``archive --dry-run``, the in-process runner and
``enqueue``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from archiver.models import ArticleScan, Asset, Citation

# When one origin is referenced as different kinds, the most specific wins.
_KIND_RANK = {"image": 0, "gif": 1, "video": 2}


@dataclass
class _Acc:
    origin: str
    kind: str
    proxies: list[str] = field(default_factory=list)
    alternates: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    citations: dict[str, list[str]] = field(default_factory=dict)


def _add(items: list[str], value: str | None) -> None:
    if value and value not in items:
        items.append(value)


def collect_assets(scans: Iterable[ArticleScan]) -> list[Asset]:
    """One Asset per origin across all articles, in first-seen order, with every proxy route,
    alternate, written URL and citing article merged in."""
    accs: dict[str, _Acc] = {}
    for scan in scans:
        for ref in scan.references:
            acc = accs.get(ref.origin)
            if acc is None:
                acc = accs[ref.origin] = _Acc(ref.origin, ref.kind)
            elif _KIND_RANK.get(ref.kind, 0) > _KIND_RANK.get(acc.kind, 0):
                acc.kind = ref.kind
            _add(acc.proxies, ref.proxy)
            _add(acc.urls, ref.url)
            for alt in ref.alternates:
                if alt != ref.origin:
                    _add(acc.alternates, alt)
            where = acc.citations.setdefault(ref.article, [])
            for place in ref.where:
                _add(where, place)
    return [
        Asset(
            origin=a.origin,
            kind=a.kind,
            proxies=tuple(a.proxies),
            alternates=tuple(a.alternates),
            urls=tuple(a.urls),
            citations=tuple(Citation(art, tuple(w)) for art, w in a.citations.items()),
        )
        for a in accs.values()
    ]


@dataclass(frozen=True)
class Plan:
    """Every unique asset, split into those still to fetch and those already archived."""

    assets: tuple[Asset, ...]
    todo: tuple[Asset, ...]
    archived: tuple[Asset, ...]
    retrying: int  # assets in ``todo`` whose last record is failed
    recorded: frozenset[str] = frozenset()  # ids in ``todo`` that already have a record

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
