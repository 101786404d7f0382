"""The manifest on top of any Store: one record object per asset, per-article manifests, and a
compacted index that makes planning cheap.

Layout::

    manifest/assets/<asset id>.json      one Record each (JSON, sorted keys, compact, UTF-8)
    manifest/articles/<article id>.json  each reference of an article -> its record summary
    manifest/article-digests.json        article key -> sha256 of its manifest
    manifest/index.jsonl                 one summary row per record, sorted by id
    manifest/changed/<asset id>.<token>  an empty marker per record write not yet indexed

``records`` merges and saves records (never worse), ``index`` compacts them with the change
markers, ``articles`` writes the per-article manifests; ``Manifest`` is the one object the
rest of archiver goes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from archiver.manifest.articles import (
    ARTICLES_PREFIX,
    DIGESTS_KEY,
    article_doc,
    article_key,
    iter_articles,
    load_swaps,
    save_swaps,
    write_articles,
)
from archiver.manifest.index import INDEX_KEY, Index, IndexStats, summary_row
from archiver.manifest.records import (
    CHANGED_PREFIX,
    MAX_ATTEMPTS,
    RECORDS_PREFIX,
    Records,
    covers,
    dumps,
    merge,
    record_key,
)
from archiver.models import ArticleScan, Record
from archiver.store.base import Store

__all__ = [
    "ARTICLES_PREFIX", "CHANGED_PREFIX", "DIGESTS_KEY", "INDEX_KEY", "MAX_ATTEMPTS",
    "RECORDS_PREFIX", "IndexStats", "Manifest", "article_doc", "article_key", "covers", "dumps",
    "merge", "summary_row",
]


class Manifest:
    """Records, article manifests and the index of one store. Safe to share between threads."""

    record_key = staticmethod(record_key)

    def __init__(self, store: Store, workers: int = 16) -> None:
        self.store = store
        self.workers = workers
        self.records = Records(store, workers)
        self.index = Index(self.records)

    def invalidate(self) -> None:
        """Forget the cached summaries: the next call lists the records again."""
        self.index.invalidate()

    def load(self, asset_id: str) -> Record | None:
        """The stored record of an asset, or None. ManifestError if it is unreadable."""
        return self.records.load(asset_id)

    def save(self, record: Record, *, fresh: bool = False) -> Record:
        """Merge ``record`` into the stored one and write it; return what is stored (an
        ``archived`` record never gets worse). ``fresh``: the plan found no record, so it is
        first written create-only. Returning means the record is durable."""
        try:
            return self.records.save(record, fresh=fresh)
        finally:
            self.index.invalidate()

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Asset id -> index row (status, origin, kind, key, sha256, size, content type,
        route, error code, updated_at): one GET of the index plus one LIST of the change
        markers."""
        return self.index.summaries()

    def statuses(self) -> dict[str, str]:
        """Asset id -> status, for planning, without reading every record."""
        return {asset: row["status"] for asset, row in self.summaries().items()}

    def iter_records(self) -> Iterator[Record]:
        """Every stored record, in id order (read a few at a time, in parallel)."""
        return self.records.iter_records()

    def build_index(self, *, full: bool = False) -> IndexStats:
        """Compact the records into ``manifest/index.jsonl`` (see ``Index.build``)."""
        return self.index.build(full=full)

    def iter_articles(self) -> Iterator[dict[str, Any]]:
        """Every article manifest (article, path, title, date, references...), in key order."""
        return iter_articles(self.store)

    def write_articles(self, scans: Iterable[ArticleScan]) -> int:
        """Write ``manifest/articles/<id>.json`` for each scan; return how many changed."""
        return write_articles(self.store, scans, self.summaries(), self.workers)

    def load_swaps(self, article: str) -> list[dict[str, Any]]:
        """What ``rewrite --video-tags`` replaced in ``article`` (origin, original,
        replacement), from ``manifest/rewrites/<article>.json``."""
        return load_swaps(self.store, article)

    def save_swaps(self, article: str, swaps: Iterable[Mapping[str, Any]]) -> None:
        """Record element swaps of ``article`` (added to the ones already recorded)."""
        save_swaps(self.store, article, swaps)
