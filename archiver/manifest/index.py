"""The compacted index: one summary row per record, and the change markers that keep it cheap.

Planning (``Index.summaries()``) is one GET of ``manifest/index.jsonl`` plus one LIST of the
change markers, and a GET of each record written since the last ``build()``: its cost follows
what changed, not the size of the archive. ``build()`` folds those records into the index, then
deletes the markers it consumed (a marker written meanwhile has another token and stays).
Without an index, or with ``build(full=True)``, every record is listed and compared by the
object version each index row carries (S3 ETag, or inode and mtime locally).

Two index builds racing can drop a change from the index (never from the records); the next
``build(full=True)`` restores it, and until then the asset is at worst fetched again and found
already stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from archiver.errors import ObjectMissing
from archiver.manifest.records import CHANGED_PREFIX, ID, RANK, Records, dumps, id_of, record_key
from archiver.models import Record
from archiver.store.base import ObjectInfo

INDEX_KEY = "manifest/index.jsonl"
# What a summary row copies from a record (plus id, error code and the object's version).
_ROW_FIELDS = ("status", "origin", "kind", "key", "sha256", "size", "content_type",
               "route", "updated_at")


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


class Index:
    """The index over one store's records. Safe to share between threads."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.store = records.store
        # The last refresh, dropped by every save: planning, article manifests and the index
        # build of one run then share one GET and one LIST. Records that other processes write
        # are seen after ``invalidate()``.
        self._refreshed: _Snapshot | None = None

    def invalidate(self) -> None:
        """Forget the cached summaries: the next call lists the records again."""
        self._refreshed = None

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Asset id -> index row (status, origin, kind, key, sha256, size, content type,
        route, error code, updated_at), from the index and one listing (see module
        docstring)."""
        return self._refresh().rows

    def build(self, *, full: bool = False) -> IndexStats:
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
        counts = {status: 0 for status in RANK}
        for row in rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return IndexStats(len(rows), counts["archived"], counts["failed"], counts["skipped"],
                          snap.reread, written)

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
            keys = [record_key(a) for a in changed if ID.fullmatch(a)]
            for record in self.records.load_many(keys):
                if record is not None:
                    rows[record.id] = summary_row(record, None)
            return _Snapshot(rows, len(keys), old, markers)
        rows = {}
        stale: list[ObjectInfo] = []
        for info in self.records.objects():
            asset = id_of(info.key)
            if asset is None:
                continue
            row = index.get(asset)
            if row is not None and row.get("record_version") == _version(info) \
                    and row.get("record_size") == info.size:
                rows[asset] = row
            else:
                stale.append(info)
        for info, record in zip(stale, self.records.load_many([i.key for i in stale]),
                                strict=True):
            if record is not None:
                rows[record.id] = summary_row(record, info)
        return _Snapshot(rows, len(stale), old, markers)

    def _read_index(self) -> bytes:
        try:
            return self.store.get_bytes(INDEX_KEY)
        except ObjectMissing:
            return b""


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


def _version(info: ObjectInfo) -> str:
    # An S3 ETag changes with the content; a local one with every write (see LocalStore).
    return info.etag or repr(info.mtime)
