"""The manifest on top of any Store: one record object per asset, per-article manifests, and a
compacted index that makes planning cheap.

Layout::

    manifest/assets/<asset id>.json      one Record each (JSON, sorted keys, compact, UTF-8)
    manifest/articles/<article id>.json  each reference of an article -> its record summary
    manifest/article-digests.json        article key -> sha256 of its manifest
    manifest/index.jsonl                 one summary row per record, sorted by id
    manifest/changed/<asset id>.<token>  an empty marker per record write not yet indexed

Planning (``statuses()``) is one GET of the index plus one LIST of the change markers, and a
GET of each record written since the last ``build_index()``: its cost follows what changed,
not the size of the archive. ``build_index()`` folds those records into the index, then
deletes the markers it consumed (a marker written meanwhile has another token and stays).
Without an index, or with ``build_index(full=True)``, every record is listed and compared by
the object version each index row carries (S3 ETag, or inode and mtime locally).

Concurrent savers (several workers) merge under read-modify-write, then read back: if the
stored record does not cover what they merged (status at least as good, every citation and
URL present), they merge again, up to three times. The race that remains: a saver whose
read-back precedes a later overwrite by another saver returns without seeing it; the other
saver's own read-back then repairs the record unless it, too, is overtaken. The losing data is
at worst citations or attempts, never an ``archived`` status replaced by ``failed``, unless
three interleavings in a row go wrong. Two index builds racing can drop a change from the
index (never from the records); the next ``build_index(full=True)`` restores it, and until
then the asset is at worst fetched again and found already stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from archiver.errors import ManifestError, ObjectMissing
from archiver.models import ArticleScan, Citation, Record
from archiver.store.base import ObjectInfo, Store
from archiver.store.keys import encode_path

RECORDS_PREFIX = "manifest/assets/"
ARTICLES_PREFIX = "manifest/articles/"
INDEX_KEY = "manifest/index.jsonl"
CHANGED_PREFIX = "manifest/changed/"  # one empty marker per record write, until indexed
DIGESTS_KEY = "manifest/article-digests.json"
JSON_TYPE = "application/json"
MAX_ATTEMPTS = 20  # attempts history kept per record (the newest ones)
SAVE_ROUNDS = 3
_ID = re.compile(r"[0-9a-f]{64}")
_RANK = {"archived": 2, "failed": 1, "skipped": 1}
# What a summary row copies from a record (plus id, error code and the object's version).
_ROW_FIELDS = ("status", "origin", "kind", "key", "sha256", "size", "content_type",
               "updated_at")
_SUMMARY_FIELDS = ("status", "key", "sha256", "size", "content_type", "error")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class IndexStats:
    """What ``build_index`` found: records by status, and how many it had to read again."""

    records: int
    archived: int
    failed: int
    skipped: int
    reread: int
    written: bool


@dataclass(frozen=True)
class _Snapshot:
    """Summaries as last read: rows by id, how many records were read, the index bytes they
    started from, and the change markers consumed (deleted once an index holds them)."""

    rows: dict[str, dict[str, Any]]
    reread: int
    index: bytes
    markers: tuple[str, ...] = ()


def dumps(data: Any) -> bytes:
    """The manifest's JSON: UTF-8, sorted keys, compact."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def article_key(article: str) -> str:
    """``manifest/articles/<article id, made key-safe>.json``."""
    return f"{ARTICLES_PREFIX}{encode_path(article)}.json"


class Manifest:
    """Records, article manifests and the index of one store. Safe to share between threads."""

    def __init__(self, store: Store, workers: int = 16) -> None:
        self.store = store
        self.workers = workers
        # The last refresh (rows, reread, index bytes), dropped by every save: planning,
        # article manifests and the index build of one run then share one GET and one LIST.
        # Records that other processes write are seen after ``invalidate()``.
        self._refreshed: _Snapshot | None = None

    def invalidate(self) -> None:
        """Forget the cached summaries: the next call lists the records again."""
        self._refreshed = None

    @staticmethod
    def record_key(asset_id: str) -> str:
        """``manifest/assets/<id>.json``; ManifestError if the id is not a sha256 hex digest."""
        if not _ID.fullmatch(asset_id):
            raise ManifestError(f"not an asset id: {asset_id[:80]!r}")
        return f"{RECORDS_PREFIX}{asset_id}.json"

    def load(self, asset_id: str) -> Record | None:
        """The stored record of an asset, or None. ManifestError if it is unreadable."""
        key = self.record_key(asset_id)
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

    def save(self, record: Record, *, fresh: bool = False) -> Record:
        """Merge ``record`` into the stored one and write it; return what is stored.

        Never worsens data: an ``archived`` record keeps its object facts whatever comes
        after (new citations, URLs and attempts are merged in); anything else is replaced by
        the newer record. Writes nothing when the merge changes nothing but ``updated_at``.

        ``fresh``: the caller expects no stored record yet (the plan had none), so the record
        is first written create-only, one request and no read-back; if one exists after all,
        the normal merge follows.
        """
        try:
            return self._save(record, fresh)
        finally:
            self._refreshed = None

    def _save(self, record: Record, fresh: bool) -> Record:
        new = record
        merged = _stamp(record)
        if fresh and self._put_record(merged, overwrite=False):
            return merged
        for _ in range(SAVE_ROUNDS):
            existing = self.load(new.id)
            merged = merge(existing, new)
            if existing is not None and _same(existing, merged):
                return existing
            self._put_record(merged, overwrite=True)
            stored = self.load(merged.id)
            if stored is None or covers(stored, merged):
                return stored or merged
            new = merged  # another saver wrote in between: fold ours into theirs again
        return merged

    def _put_record(self, record: Record, overwrite: bool) -> bool:
        # The marker goes first: a record is never newer than the index without a marker
        # saying so (a crash between the two leaves a marker, which only costs a re-read).
        marker = f"{CHANGED_PREFIX}{record.id}.{uuid.uuid4().hex}"
        self.store.put_bytes(marker, b"", "application/octet-stream", overwrite=True)
        return self.store.put_bytes(self.record_key(record.id), dumps(record.to_dict()),
                                    JSON_TYPE, overwrite=overwrite)

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Asset id -> index row (status, origin, kind, key, sha256, size, content type,
        error code, updated_at), from the index and one listing (see module docstring)."""
        return self._refresh().rows

    def statuses(self) -> dict[str, str]:
        """Asset id -> status, for planning, without reading every record."""
        return {asset: row["status"] for asset, row in self.summaries().items()}

    def iter_records(self) -> Iterator[Record]:
        """Every stored record, in id order (read a few at a time, in parallel)."""
        keys = sorted(info.key for info in self._list_records()
                      if _id_of(info.key) is not None)
        for record in self._map(self._load_key, keys):
            if record is not None:
                yield record

    def build_index(self, *, full: bool = False) -> IndexStats:
        """Compact the records into ``manifest/index.jsonl`` (rewritten only when it changed):
        the last index plus the records whose change markers are listed, then those markers
        are deleted. ``full`` lists and compares every record instead (repairs an index that
        lost a change, e.g. to two builds racing)."""
        snap = self._read_rows(full=True) if full else self._refresh()
        rows, old = snap.rows, snap.index
        if snap.reread == 0 and len(rows) == old.count(b"\n"):
            body = old  # every row came from the index as it is: nothing to rebuild
        else:
            body = b"".join(dumps(rows[asset]) + b"\n" for asset in sorted(rows))
        written = body != old
        if written:
            self.store.put_bytes(INDEX_KEY, body, "application/x-ndjson", overwrite=True)
        # Only after the index holds their records; a marker written since has another name.
        if snap.markers:
            self.store.delete(snap.markers)
        self._refreshed = _Snapshot(rows, 0, body)
        counts = {status: 0 for status in _RANK}
        for row in rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return IndexStats(len(rows), counts["archived"], counts["failed"], counts["skipped"],
                          snap.reread, written)

    def write_articles(self, scans: Iterable[ArticleScan]) -> int:
        """Write ``manifest/articles/<id>.json`` for each scan; return how many changed.

        Record summaries come from ``summaries()``, not one GET per reference. Which article
        manifests changed is told by ``manifest/article-digests.json`` (article key ->
        sha256 of its manifest), one GET instead of listing every article; without it (an
        older archive), by a listing and the objects' MD5 ETags or bytes."""
        rows = self.summaries()
        bodies = {article_key(scan.article): dumps(article_doc(scan, rows)) for scan in scans}
        digests = self._read_digests()
        if digests is None:
            unchanged = self._unchanged_by_listing(bodies)
            digests = {}
        else:
            unchanged = {key for key, body in bodies.items()
                         if digests.get(key) == hashlib.sha256(body).hexdigest()}
        changed = [(key, body) for key, body in bodies.items() if key not in unchanged]

        def write(item: tuple[str, bytes]) -> None:
            self.store.put_bytes(item[0], item[1], JSON_TYPE, overwrite=True)

        self._map(write, changed)
        new = {**digests, **{key: hashlib.sha256(body).hexdigest()
                             for key, body in bodies.items()}}
        if new != digests:
            # Written after the manifests themselves: a crash in between costs a rewrite of
            # identical bytes next time, never a stale manifest taken for current.
            self.store.put_bytes(DIGESTS_KEY, dumps(new), JSON_TYPE, overwrite=True)
        return len(changed)

    def _read_digests(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.store.get_bytes(DIGESTS_KEY))
        except ObjectMissing:
            return None
        except ValueError:
            return {}  # damaged: every article manifest is rewritten, then the map
        return {k: v for k, v in data.items() if isinstance(v, str)} \
            if isinstance(data, dict) else {}

    def _unchanged_by_listing(self, bodies: dict[str, bytes]) -> set[str]:
        listed = {info.key: info for info in self.store.list(ARTICLES_PREFIX)}

        def same(item: tuple[str, bytes]) -> bool:
            key, body = item
            info = listed.get(key)
            if info is None or info.size != len(body):
                return False
            if info.etag == hashlib.md5(body, usedforsecurity=False).hexdigest():
                return True
            return self.store.get_bytes(key) == body

        items = list(bodies.items())
        return {key for (key, _), ok in zip(items, self._map(same, items), strict=True) if ok}

    def _refresh(self) -> _Snapshot:
        cached = self._refreshed
        if cached is not None:
            return cached
        fresh = self._refreshed = self._read_rows()
        return fresh

    def _read_rows(self, full: bool = False) -> _Snapshot:
        """The index's rows updated with every record written since it was built: read from
        the change markers (one LIST, however large the archive), or, without an index or
        with ``full``, by listing every record and re-reading those whose version differs."""
        old = self._read_index()
        index: dict[str, dict[str, Any]] = {}
        for line in old.splitlines():
            try:
                row = json.loads(line)
                index[row["id"]] = row
            except (ValueError, KeyError, TypeError):
                continue  # a damaged row only costs a re-read of its record
        markers = tuple(info.key for info in self.store.list(CHANGED_PREFIX))
        if old and not full:
            rows = dict(index)
            changed = sorted({m[len(CHANGED_PREFIX):].split(".", 1)[0] for m in markers})
            keys = [self.record_key(a) for a in changed if _ID.fullmatch(a)]
            for record in self._map(self._load_key, keys):
                if record is not None:
                    rows[record.id] = summary_row(record, None)
            return _Snapshot(rows, len(keys), old, markers)
        rows = {}
        stale: list[ObjectInfo] = []
        for info in self._list_records():
            asset = _id_of(info.key)
            if asset is None:
                continue
            row = index.get(asset)
            if row is not None and row.get("record_version") == _version(info) \
                    and row.get("record_size") == info.size:
                rows[asset] = row
            else:
                stale.append(info)
        for info, record in zip(stale, self._map(self._load_key, [i.key for i in stale]),
                                strict=True):
            if record is not None:
                rows[record.id] = summary_row(record, info)
        return _Snapshot(rows, len(stale), old, markers)

    def _list_records(self) -> list[ObjectInfo]:
        """Every object under ``manifest/assets/``; on a remote store, 16 listings at once (one
        per leading hex digit of the record ids) instead of one page after another."""
        if not getattr(self.store, "parallel_list", False):
            return list(self.store.list(RECORDS_PREFIX))
        parts = self._map(lambda digit: list(self.store.list(RECORDS_PREFIX + digit)),
                          list("0123456789abcdef"))
        return [info for part in parts for info in part]

    def _read_index(self) -> bytes:
        try:
            return self.store.get_bytes(INDEX_KEY)
        except ObjectMissing:
            return b""

    def _load_key(self, key: str) -> Record | None:
        asset = _id_of(key)
        if asset is None:
            return None
        try:
            return self.load(asset)
        except ManifestError:
            return None  # unreadable or misplaced: treated as absent, so the asset is redone

    def _map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        if len(items) <= 1 or self.workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))


def summary_row(record: Record, info: ObjectInfo | None) -> dict[str, Any]:
    """The index row of a record whose object was listed as ``info`` (None when it was read
    through a change marker: a later full build then reads it once more)."""
    row: dict[str, Any] = {"id": record.id}
    for name in _ROW_FIELDS:
        row[name] = getattr(record, name)
    row["error"] = (record.error or {}).get("code")
    row["record_version"] = _version(info) if info is not None else None
    row["record_size"] = info.size if info is not None else None
    return row


def article_doc(scan: ArticleScan, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An article's manifest: each reference with the summary of its asset's record."""
    references = []
    counts: dict[str, int] = {}
    for ref in scan.references:
        entry = ref.to_dict()
        entry.pop("article")
        entry["asset"] = hashlib.sha256(ref.origin.encode("utf-8")).hexdigest()
        row = rows.get(entry["asset"])
        for name in _SUMMARY_FIELDS:
            entry[name] = row.get(name) if row else None
        entry["status"] = entry["status"] or "pending"
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        references.append(entry)
    return {
        "article": scan.article,
        "path": scan.path,
        "title": scan.title,
        "counts": counts,
        "references": references,
        "skipped": [{"where": s.where, "value": s.value, "reason": s.reason}
                    for s in scan.skipped],
        "warnings": list(scan.warnings),
    }


def merge(existing: Record | None, new: Record) -> Record:
    """What ``save`` stores when ``new`` arrives over ``existing`` (see ``Manifest.save``)."""
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
        created_at=existing.created_at or new.created_at or _now(),
        updated_at=_now(),
    )


def covers(stored: Record, wanted: Record) -> bool:
    """Whether ``stored`` holds at least what ``wanted`` does (status rank, citations, URLs)."""
    if _RANK.get(stored.status, 0) < _RANK.get(wanted.status, 0):
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
    now = _now()
    return replace(record, attempts=record.attempts[-MAX_ATTEMPTS:],
                   created_at=record.created_at or now, updated_at=record.updated_at or now)


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(first + second))


def _merge_citations(first: tuple[Citation, ...],
                     second: tuple[Citation, ...]) -> tuple[Citation, ...]:
    where: dict[str, tuple[str, ...]] = {}
    for citation in first + second:
        where[citation.article] = _union(where.get(citation.article, ()), citation.where)
    return tuple(Citation(article, places) for article, places in where.items())


def _id_of(key: str) -> str | None:
    name = key[len(RECORDS_PREFIX):]
    if not key.startswith(RECORDS_PREFIX) or not name.endswith(".json"):
        return None
    asset = name[:-5]
    return asset if _ID.fullmatch(asset) else None


def _version(info: ObjectInfo) -> str:
    # An S3 ETag changes with the content; a local one with every write (see LocalStore).
    return info.etag or repr(info.mtime)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
