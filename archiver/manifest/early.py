"""Article manifests written while a run goes on, on a store whose requests are round trips.

At the end of a run every changed article manifest used to be written at once: on S3 a hundred
PUTs, several round trips of waiting after the last asset. ``EarlyArticles`` hears of each
record once it is durable (the runner's ``on_record``) and writes the manifest of an article
as soon as every asset of it that the run planned has its record durable, from the summaries
as they are then (which hold every durable record: segments are folded in as they are
written). The end of the run (``write_articles``) takes what was written (``written``: article
key -> "sha256 made-of digest") instead of building and writing it again, when what the
manifest is made of has not changed since; the map of digests is still written after every
manifest, by the end of the run only.

Consistency and crashes: a manifest written early holds only durable records, as one written
at the end does; a crash after it and before the map leaves a map without its entry (or with
the old one), which the next run takes as changed and rewrites with the same bytes. Only
articles that one of the run's assets belongs to are written early (the others did not
change); an article named by two scans is left to the end (the last scan decides there).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from archiver.manifest.articles import article_doc, article_key, made_of
from archiver.manifest.records import JSON_TYPE, dumps
from archiver.manifest.rows import Rows
from archiver.models import ArticleScan, Record, asset_id
from archiver.store.base import Store

log = logging.getLogger(__name__)


class EarlyArticles:
    """Writes article manifests as their assets' records become durable. ``recorded`` is
    called with each durable record (from one thread); ``finish`` waits for the writes and
    returns what was written. Use as a context manager (its threads stop on the way out)."""

    def __init__(self, store: Store, summaries: Callable[[], Rows],
                 scans: Sequence[ArticleScan], sources: Mapping[tuple[str, str], bytes],
                 planned: set[str], workers: int = 8) -> None:
        self.store = store
        self.summaries = summaries
        self.scans = scans
        self.sources = sources
        self._left: dict[int, int] = {}  # article (index in scans) -> assets not durable yet
        self._waiting: dict[str, list[int]] = {}  # asset id -> articles waiting on it
        named = Counter(article_key(scan.article) for scan in scans)
        for n, scan in enumerate(scans):
            if named[article_key(scan.article)] > 1 or (scan.article, scan.path) not in sources:
                continue
            ids = {asset_id(ref.origin) for ref in scan.references} & planned
            for asset in ids:
                self._waiting.setdefault(asset, []).append(n)
            if ids:
                self._left[n] = len(ids)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="articles")
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self.written: dict[str, str] = {}

    def __enter__(self) -> EarlyArticles:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def recorded(self, record: Record) -> None:
        """``record`` is durable: write the manifests of the articles it completes."""
        for n in self._waiting.pop(record.id, ()):
            self._left[n] -= 1
            if self._left[n] == 0:
                self._futures.append(self._pool.submit(self._write, self.scans[n]))

    def _write(self, scan: ArticleScan) -> None:
        rows = self.summaries()
        key = article_key(scan.article)
        inputs = made_of(rows, scan, self.sources[(scan.article, scan.path)])
        body = dumps(article_doc(scan, rows))
        self.store.put_bytes(key, body, JSON_TYPE, overwrite=True)
        with self._lock:
            self.written[key] = f"{hashlib.sha256(body).hexdigest()} {inputs}"

    def finish(self) -> dict[str, str]:
        """Wait for the writes started; article key -> "sha256 made-of" of each written (one
        that failed is left to the end of the run, which writes it as it always did)."""
        for future in self._futures:
            try:
                future.result()
            except Exception as exc:  # the end of the run writes it
                log.debug("article manifest not written early: %s", exc)
        with self._lock:
            return dict(self.written)
