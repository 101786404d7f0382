"""After a batching run died: find the objects it stored whose records it never wrote.

Each stored object carries its asset's id (``asset-id``), the fetch route and the image facts
in its metadata (``pipeline._put``), in the same request that stores it. A run that died
leaves its writer's marker (``segments.stale_writers``); the next run then lists ``media/``
once (one request per 1,000 objects), HEADs the objects stored since the dead run started
that no record points to, and rebuilds the records of the assets it was about to fetch from
them, without fetching their bytes again. When no run died this costs one LIST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archiver.manifest.records import parallel_map
from archiver.manifest.segments import stale_writers
from archiver.models import Asset, Record, now_iso
from archiver.store.base import ObjectInfo

if TYPE_CHECKING:
    from archiver.manifest import Manifest

MEDIA_PREFIX = "media/"
CLOCK_SLACK = 120.0  # seconds: objects stored this long before a dead run's start still count
_FACTS = {"width": int, "height": int, "frames": int, "duration": float}


@dataclass
class Orphans:
    """Stored objects by asset id, their related objects (asset id -> name -> key), and the
    markers of the dead runs they came from (``forget`` them once the records are written)."""

    objects: dict[str, ObjectInfo] = field(default_factory=dict)
    related: dict[str, dict[str, str]] = field(default_factory=dict)
    writers: list[str] = field(default_factory=list)

    def forget(self, manifest: Manifest) -> None:
        """Remove the dead runs' markers (their records are recovered)."""
        if self.writers:
            manifest.store.delete(self.writers)


def find_orphans(manifest: Manifest, wanted: set[str],
                 stale: list[tuple[str, float]] | None = None) -> Orphans:
    """The objects stored by dead runs for the assets ``wanted`` (see module docstring).
    ``stale``: ``stale_writers(store)`` when the caller listed them already."""
    store = manifest.store
    stale = stale_writers(store) if stale is None else stale
    if stale:  # a local store: the dead run's temporary files go
        store.discard_leftovers()
    if not stale or not wanted:
        return Orphans()
    since = min(started for _, started in stale) - CLOCK_SLACK
    referenced = {row.get("key") for row in manifest.summaries().values()}
    if getattr(store, "parallel_list", False):
        parts = parallel_map(lambda d: list(store.list(MEDIA_PREFIX + d)),
                             list("0123456789abcdef"), manifest.workers)
        listed = [info for part in parts for info in part]
    else:
        listed = list(store.list(MEDIA_PREFIX))
    candidates = [info.key for info in listed
                  if info.mtime >= since and info.key not in referenced]
    out = Orphans(writers=[key for key, _ in stale])
    for info in parallel_map(store.head, candidates, manifest.workers):
        if info is None:
            continue
        asset = info.metadata.get("asset-id")
        if asset not in wanted:
            continue
        name = info.metadata.get("related")
        if name:
            out.related.setdefault(asset, {})[name] = info.key
        else:
            out.objects[asset] = info
    return out


def recovered_record(asset: Asset, info: ObjectInfo, related: dict[str, str]) -> Record:
    """The archived record of ``asset`` from its stored object (``info``, with metadata)."""
    meta = info.metadata
    facts: dict[str, int | float] = {}
    for name, kind in _FACTS.items():
        try:
            facts[name] = kind(meta[name])
        except (KeyError, ValueError):
            pass
    now = now_iso()
    sha = info.key.rsplit("/", 1)[-1].split(".", 1)[0]
    return Record(
        origin=asset.origin, kind=asset.kind, status="archived", key=info.key, sha256=sha,
        size=info.size, content_type=info.content_type, route=meta.get("route") or None,
        urls=asset.urls, alternates=asset.alternates, citations=asset.citations,
        related=dict(related), extra={"recovered": "from its stored object, after a crash"},
        width=int(facts["width"]) if "width" in facts else None,
        height=int(facts["height"]) if "height" in facts else None,
        frames=int(facts["frames"]) if "frames" in facts else None,
        duration=float(facts["duration"]) if "duration" in facts else None,
        created_at=now, updated_at=now,
    )
