"""Asset records: one JSON object per asset, merged so that a record never gets worse.

Concurrent savers (several workers) merge under read-modify-write, then read back: if the
stored record does not cover what they merged (status at least as good, every citation and
URL present), they merge again, up to three times. The race that remains: a saver whose
read-back precedes a later overwrite by another saver returns without seeing it; the other
saver's own read-back then repairs the record unless it, too, is overtaken. The losing data is
at worst citations or attempts, never an ``archived`` status replaced by ``failed``, unless
three interleavings in a row go wrong.

Every record write first puts an empty change marker (``manifest/changed/<id>.<token>``), so
the index (``index.py``) learns what changed from one listing.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from archiver.errors import ManifestError, ObjectMissing
from archiver.models import Citation, Record, now_iso
from archiver.store.base import ObjectInfo, Store

RECORDS_PREFIX = "manifest/assets/"
CHANGED_PREFIX = "manifest/changed/"  # one empty marker per record write, until indexed
JSON_TYPE = "application/json"
MAX_ATTEMPTS = 20  # attempts history kept per record (the newest ones)
SAVE_ROUNDS = 3
ID = re.compile(r"[0-9a-f]{64}")
RANK = {"archived": 2, "failed": 1, "skipped": 1}

T = TypeVar("T")
R = TypeVar("R")


# One encoder for every call (json.dumps builds one per call with these options), without
# the circular-reference check (a dict of seen containers per call: what is written here is
# built from records and never refers to itself): a record 20% cheaper, the same bytes.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            check_circular=False)


def dumps(data: Any) -> bytes:
    """The manifest's JSON: UTF-8, sorted keys, compact."""
    return _ENCODER.encode(data).encode()


def record_key(asset_id: str) -> str:
    """``manifest/assets/<id>.json``; ManifestError if the id is not a sha256 hex digest."""
    if not ID.fullmatch(asset_id):
        raise ManifestError(f"not an asset id: {asset_id[:80]!r}")
    return f"{RECORDS_PREFIX}{asset_id}.json"


def id_of(key: str) -> str | None:
    """The asset id of a record key, or None for anything else under the prefix."""
    name = key[len(RECORDS_PREFIX):]
    if not key.startswith(RECORDS_PREFIX) or not name.endswith(".json"):
        return None
    asset = name[:-5]
    return asset if ID.fullmatch(asset) else None


def parallel_map(fn: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]``, ``workers`` at a time (store requests wait on I/O)."""
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


class Records:
    """The record objects of one store. Safe to share between threads."""

    def __init__(self, store: Store, workers: int = 16) -> None:
        self.store = store
        self.workers = workers

    def load(self, asset_id: str) -> Record | None:
        """The stored record of an asset, or None. ManifestError if it is unreadable."""
        key = record_key(asset_id)
        try:
            data = self.store.get_bytes(key)
        except ObjectMissing:
            return None
        try:
            record = Record.from_dict(json.loads(data))
        except (ValueError, TypeError, KeyError) as exc:
            raise ManifestError(f"unreadable record {key}: {exc}") from exc
        if record.id != asset_id:
            raise ManifestError(f"record {key} is for another origin: {record.origin!r}")
        return record

    def load_key(self, key: str) -> Record | None:
        """The record at ``key``; None when it is no record key, or unreadable or misplaced
        (treated as absent, so the asset is redone)."""
        asset = id_of(key)
        if asset is None:
            return None
        try:
            return self.load(asset)
        except ManifestError:
            return None

    def save(self, record: Record, *, fresh: bool = False) -> Record:
        """Merge ``record`` into the stored one and write it; return what is stored (see
        ``merge``). Writes nothing when the merge changes nothing but ``updated_at``.

        ``fresh``: the caller expects no stored record yet (the plan had none), so the record
        is first written create-only, one request and no read-back; if one exists after all,
        the normal merge follows.
        """
        new = record
        merged = _stamp(record)
        if fresh and self._put(merged, overwrite=False):
            return merged
        for _ in range(SAVE_ROUNDS):
            existing = self.load(new.id)
            merged = merge(existing, new)
            if existing is not None and _same(existing, merged):
                return existing
            self._put(merged, overwrite=True)
            stored = self.load(merged.id)
            if stored is None or covers(stored, merged):
                return stored or merged
            new = merged  # another saver wrote in between: fold ours into theirs again
        return merged

    def _put(self, record: Record, overwrite: bool) -> bool:
        # The marker goes first: a record is never newer than the index without a marker
        # saying so (a crash between the two leaves a marker, which only costs a re-read).
        marker = f"{CHANGED_PREFIX}{record.id}.{uuid.uuid4().hex}"
        self.store.put_bytes(marker, b"", "application/octet-stream", overwrite=True)
        return self.store.put_bytes(record_key(record.id), dumps(record.to_dict()),
                                    JSON_TYPE, overwrite=overwrite)

    def objects(self) -> list[ObjectInfo]:
        """Every object under ``manifest/assets/``; on a remote store, 16 listings at once (one
        per leading hex digit of the record ids) instead of one page after another, once a
        first page shows there are more than a page of them: a new or small archive's
        records take one request, not 16."""
        listing = iter(self.store.list(RECORDS_PREFIX))
        if not getattr(self.store, "parallel_list", False):
            return list(listing)
        page = int(getattr(self.store, "page_size", 1000))
        first = list(itertools.islice(listing, page))
        if len(first) < page:  # the listing ends on its first page: no further request
            return first + list(listing)
        parts = parallel_map(lambda digit: list(self.store.list(RECORDS_PREFIX + digit)),
                             list("0123456789abcdef"), self.workers)
        return [info for part in parts for info in part]

    def load_many(self, keys: list[str]) -> list[Record | None]:
        """``load_key`` of each key, in order: a few at a time from a remote store, whose
        reads are round trips; one after the other from a local one, whose reads are work
        under the GIL that threads only slow down (10,000 records: 1.8 s against 4 s)."""
        remote = getattr(self.store, "parallel_list", False)
        return parallel_map(self.load_key, keys, self.workers if remote else 1)

    def iter_records(self) -> Iterator[Record]:
        """Every stored record, in id order, read a batch at a time in parallel while the
        caller works on the previous batch: memory holds two batches, not the archive."""
        keys = sorted(info.key for info in self.objects() if id_of(info.key) is not None)
        size = max(64, self.workers * 8)
        batches = [keys[start:start + size] for start in range(0, len(keys), size)]
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="records") as ahead:
            pending = ahead.submit(self.load_many, batches[0])
            for n in range(len(batches)):
                loaded = pending.result()
                if n + 1 < len(batches):
                    pending = ahead.submit(self.load_many, batches[n + 1])
                for record in loaded:
                    if record is not None:
                        yield record

def merge(existing: Record | None, new: Record) -> Record:
    """What ``save`` stores when ``new`` arrives over ``existing``. Never worsens data: an
    ``archived`` record keeps its object facts whatever comes after (new citations, URLs and
    attempts are merged in); anything else is replaced by the newer record."""
    if existing is None:
        return _stamp(new)
    keep_old = existing.status == "archived"
    base = existing if keep_old else new
    fresh = [a for a in new.attempts if a not in existing.attempts]
    return replace(
        base,
        urls=_union(existing.urls, new.urls),
        alternates=_union(existing.alternates, new.alternates),
        citations=_merge_citations(existing.citations, new.citations),
        attempts=(existing.attempts + tuple(fresh))[-MAX_ATTEMPTS:],
        related={**new.related, **existing.related} if keep_old
        else {**existing.related, **new.related},
        created_at=existing.created_at or new.created_at or now_iso(),
        updated_at=now_iso(),
    )


def covers(stored: Record, wanted: Record) -> bool:
    """Whether ``stored`` holds at least what ``wanted`` does (status rank, citations, URLs)."""
    if RANK.get(stored.status, 0) < RANK.get(wanted.status, 0):
        return False
    have = {(c.article, w) for c in stored.citations for w in c.where} | {
        (c.article, "") for c in stored.citations}
    need = {(c.article, w) for c in wanted.citations for w in c.where} | {
        (c.article, "") for c in wanted.citations}
    return need <= have and set(wanted.urls) <= set(stored.urls)


def _same(a: Record, b: Record) -> bool:
    left, right = a.to_dict(), b.to_dict()
    left.pop("updated_at")
    right.pop("updated_at")
    return left == right


def _stamp(record: Record) -> Record:
    if record.created_at and record.updated_at and len(record.attempts) <= MAX_ATTEMPTS:
        return record  # nothing to stamp (a fresh record from the pipeline): no copy
    now = now_iso()
    return replace(record, attempts=record.attempts[-MAX_ATTEMPTS:],
                   created_at=record.created_at or now, updated_at=record.updated_at or now)


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(first + second))


def _merge_citations(first: tuple[Citation, ...],
                     second: tuple[Citation, ...]) -> tuple[Citation, ...]:
    where: dict[str, tuple[str, ...]] = {}
    dates: dict[str, str | None] = {}
    for citation in first + second:
        where[citation.article] = _union(where.get(citation.article, ()), citation.where)
        dates[citation.article] = citation.date or dates.get(citation.article)
    return tuple(Citation(article, places, dates[article]) for article, places in where.items())

