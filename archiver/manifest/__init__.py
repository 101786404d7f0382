"""The manifest on top of any Store: one record object per asset, per-article manifests, and a
compacted index that makes planning cheap.

Layout::

    manifest/assets/<asset id>.json      one Record each (JSON, sorted keys, compact, UTF-8)
    manifest/articles/<article id>.json  each reference of an article -> its record summary
    manifest/article-digests.json        article key -> sha256 of its manifest and digest of
                                         what it was built from (``articles._Inputs``)
    manifest/index.jsonl                 one summary row per record, sorted by id
    manifest/changed/<asset id>.<token>  an empty marker per record write not yet indexed
    manifest/segments/<name>.jsonl       records written in batches (``segments.py``)
    manifest/writers/<writer>            a batching run's marker, while it runs
    manifest/batches/<batch>.json.gz     an enqueued batch's assets (``drivers/journal.py``)

``records`` merges and saves records (never worse), ``index`` compacts them with the change
markers, ``articles`` writes the per-article manifests; ``Manifest`` is the one object the
rest of archiver goes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
    parallel_map,
    record_key,
)
from archiver.manifest.recovery import Orphans, find_orphans, recovered_record
from archiver.manifest.rows import Rows
from archiver.manifest.segments import (
    SEGMENTS_PREFIX,
    WRITERS_PREFIX,
    SegmentLog,
    fold,
    parse_segment,
    segment_key,
    segment_name,
    stale_writers,
)
from archiver.models import ArticleScan, Asset, Record
from archiver.store.base import Store

__all__ = [
    "ARTICLES_PREFIX", "CHANGED_PREFIX", "DIGESTS_KEY", "INDEX_KEY", "MAX_ATTEMPTS",
    "RECORDS_PREFIX", "SEGMENTS_PREFIX", "WRITERS_PREFIX", "IndexStats", "Manifest", "Orphans",
    "article_doc", "article_key", "covers", "dumps", "merge", "summary_row",
]


class Manifest:
    """Records, article manifests and the index of one store. Safe to share between threads."""

    record_key = staticmethod(record_key)

    def __init__(self, store: Store, workers: int = 16) -> None:
        self.store = store
        self.workers = workers
        self.records = Records(store, workers)
        self.index = Index(self.records)
        # While ``batched()`` runs: the log that stages records into segments.
        self.log: SegmentLog | None = None

    @contextmanager
    def batched(self, *, max_records: int | None = None,
                linger: float | None = None) -> Iterator[SegmentLog]:
        """Within it, ``save`` stages records into segments (``segments.SegmentLog``) and
        returns before they are durable: the caller reports a record only once
        ``log.durable()`` reaches the ticket it saw (``log.staged()``) after saving it, as
        the runner does. On the way out everything staged is written (and the writer's
        marker removed); an error while writing is raised."""
        log = SegmentLog(self.store, max_records=max_records, linger=linger)
        log.on_written = self.index.absorb  # the cached summaries stay true without a listing
        log.open()
        self.log = log
        try:
            yield log
        finally:
            self.log = None
            log.close()

    def invalidate(self) -> None:
        """Forget the cached summaries: the next call lists the records again."""
        self.index.invalidate()

    def load(self, asset_id: str) -> Record | None:
        """The stored record of an asset (its file and its versions in segments, folded), or
        None. ManifestError if it is unreadable."""
        return self.index.load(asset_id)

    def load_file(self, asset_id: str) -> Record | None:
        """The asset's per-asset record file only (one GET, no index): what a Celery worker
        looks at before fetching. Versions in segments, which only in-process runs write,
        are not seen (readers fold them in)."""
        return self.records.load(asset_id)

    def save(self, record: Record, *, fresh: bool = False) -> Record:
        """Merge ``record`` into the stored one and write it; return what is stored (an
        ``archived`` record never gets worse). ``fresh``: the plan found no record, so it is
        first written create-only. Returning means the record is durable, except within
        ``batched()``: then the record is staged as a new version (readers fold versions
        with the same merge) and is durable once the log says so."""
        log = self.log
        if log is not None:  # the index hears of it once its segment is written (absorb)
            stamped = merge(None, record)
            log.add(stamped)
            return stamped
        try:
            return self.records.save(record, fresh=fresh)
        finally:
            self.index.invalidate()

    def orphans(self, assets: Iterable[Asset],
                stale: list[tuple[str, float]] | None = None) -> Orphans:
        """Objects that batching runs which died (``segments.stale_writers``) stored for
        ``assets`` without their records being written; nothing to look for (one LIST) when
        no run died. ``stale``: ``stale_writers()``, when listed already."""
        return find_orphans(self, {asset.id for asset in assets}, stale)

    def stale_writers(self) -> list[tuple[str, float]]:
        """The markers of batching runs that died (``segments.stale_writers``): one LIST."""
        return stale_writers(self.store)

    def recovered(self, asset: Asset, orphans: Orphans) -> Record:
        """The archived record of ``asset``, rebuilt from its stored object's metadata."""
        return recovered_record(asset, orphans.objects[asset.id],
                                orphans.related.get(asset.id, {}))

    def summaries(self) -> Rows:
        """Asset id -> index row (status, origin, kind, key, sha256, size, content type,
        route, error code, updated_at): one GET of the index plus one LIST of the change
        markers. Kept compact (``rows.Rows``): each row read is a new dict."""
        return self.index.summaries()

    def statuses(self) -> dict[str, str]:
        """Asset id -> status, for planning, without reading every record (nor making a
        dict of each row)."""
        return self.summaries().statuses()

    def iter_records(self) -> Iterator[Record]:
        """Every stored record, in id order (files read a few at a time, in parallel), folded
        with its versions in segments (every segment is read first and held while iterating:
        memory grows with the records written in segments)."""
        names = sorted(name for info in self.store.list(SEGMENTS_PREFIX)
                       if (name := segment_name(info.key)) is not None)
        if not names:
            yield from self.records.iter_records()
            return
        versions: dict[str, list[Record]] = {}
        for data in parallel_map(lambda n: self.store.get_bytes(segment_key(n)), names,
                                 self.workers):
            for record in parse_segment(data):
                versions.setdefault(record.id, []).append(record)
        ids = sorted(versions)
        n = 0
        for record in self.records.iter_records():
            while n < len(ids) and ids[n] < record.id:  # ids with versions in segments only
                yield from _folded(versions[ids[n]])
                n += 1
            extra: list[Record] = []
            if n < len(ids) and ids[n] == record.id:
                extra = versions[ids[n]]
                n += 1
            yield from _folded([record, *extra])
        for asset in ids[n:]:
            yield from _folded(versions[asset])

    def build_index(self, *, full: bool = False) -> IndexStats:
        """Compact the records into ``manifest/index.jsonl`` (see ``Index.build``)."""
        return self.index.build(full=full)

    def iter_articles(self) -> Iterator[dict[str, Any]]:
        """Every article manifest (article, path, title, date, references...), in key order."""
        return iter_articles(self.store)

    def write_articles(self, scans: Iterable[ArticleScan],
                       sources: Mapping[tuple[str, str], bytes] | None = None) -> int:
        """Write ``manifest/articles/<id>.json`` for each scan; return how many changed.
        ``sources``: the scan cache's key of each scan's bytes (``CacheStats.keys``), which
        lets an unchanged article with unchanged rows skip being rebuilt."""
        return write_articles(self.store, scans, self.summaries(), self.workers, sources,
                              self.index.settled())

    def write_articles_and_index(self, scans: Iterable[ArticleScan],
                                 sources: Mapping[tuple[str, str], bytes] | None = None,
                                 written: Mapping[str, str] | None = None) -> int:
        """``write_articles`` then ``build_index``, at once: the article manifests are made
        from the summaries as they are before the build, the index is encoded and written in
        another thread while the manifests' requests wait. Each holds only records already
        durable, so neither depends on the other having been written (a crash between them
        leaves what writing them one after the other leaves). ``written``: the manifests
        written during the run (``early.EarlyArticles``), not written again. Returns the
        manifests changed."""
        rows, settled = self.summaries(), self.index.settled()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="index") as pool:
            index = pool.submit(self.build_index)
            changed = write_articles(self.store, scans, rows, self.workers, sources, settled,
                                     written)
            index.result()
        return changed

    def load_swaps(self, article: str) -> list[dict[str, Any]]:
        """What ``rewrite --video-tags`` replaced in ``article`` (origin, original,
        replacement), from ``manifest/rewrites/<article>.json``."""
        return load_swaps(self.store, article)

    def save_swaps(self, article: str, swaps: Iterable[Mapping[str, Any]]) -> None:
        """Record element swaps of ``article`` (added to the ones already recorded)."""
        save_swaps(self.store, article, swaps)


def _folded(versions: list[Record]) -> Iterator[Record]:
    record = fold(versions)
    if record is not None:
        yield record
