"""The compacted index: one summary row per record, and the change markers that keep it cheap.

Planning (``Index.summaries()``) is one GET of ``manifest/index.jsonl`` plus one LIST of the
change markers, and a GET of each record written since the last ``build()``: its cost follows
what changed, not the size of the archive. ``build()`` folds those records into the index, then
deletes the markers it consumed (a marker written meanwhile has another token and stays).
Without an index, or with ``build(full=True)``, every record is listed and compared by the
object version each index row carries (S3 ETag, or inode and mtime locally).

Records written in segments (``segments.py``) are folded in the same way: the index header
names the segments its rows hold, so one LIST of ``manifest/segments/`` tells which are new,
and only those are read. Each row says where its record's versions are (``file``: a
per-asset record file; ``segments``: the segments holding versions) and is the fold of them
all (an ``archived`` version wins; otherwise the newest).

Two index builds racing can drop a change from the index (never from the records); the next
``build(full=True)`` restores it, and until then the asset is at worst fetched again and found
already stored.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from archiver.errors import ObjectMissing
from archiver.manifest.records import (
    CHANGED_PREFIX,
    ID,
    RANK,
    Records,
    dumps,
    id_of,
    parallel_map,
    record_key,
)
from archiver.manifest.rows import Rows
from archiver.manifest.segments import SEGMENTS_PREFIX, SegmentCache, fold, segment_name
from archiver.models import Record
from archiver.store.base import ObjectInfo

INDEX_KEY = "manifest/index.jsonl"
_BLOCK = 4 << 20  # bytes of the index read at a time
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
class Seen:
    """An index's bytes as far as ``build`` needs them: lines and sha256."""

    lines: int
    digest: bytes
    size: int = 0

    @classmethod
    def of(cls, data: bytes) -> Seen:
        return cls(data.count(b"\n"), hashlib.sha256(data).digest(), len(data))


@dataclass(frozen=True)
class _Snapshot:
    """Summaries as last read: rows by id, how many records were read, the index they
    started from (its ``Seen``: not its bytes, which would stay in memory for the whole run),
    and the change markers consumed (deleted once an index holds them)."""

    rows: Rows
    reread: int
    index: Seen
    markers: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()  # every segment the rows hold


class Index:
    """The index over one store's records. Safe to share between threads."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.store = records.store
        # The last refresh, dropped by every save: planning, article manifests and the index
        # build of one run then share one GET and one LIST. Records that other processes write
        # are seen after ``invalidate()``.
        self._refreshed: _Snapshot | None = None
        self.segments = SegmentCache(self.store)
        self._lock = threading.Lock()
        self._located: dict[str, list[str]] | None = None  # see ``_locate``

    def invalidate(self) -> None:
        """Forget the cached summaries: the next call lists the records again."""
        with self._lock:
            self._refreshed = None
            self._located = None

    def absorb(self, name: str, records: list[Record]) -> None:
        """Fold the records of segment ``name``, just written by this process, into the cached
        summaries (if any), so that the rows of a batching run need no listing or GET after
        it; segments other processes write are still found by the next refresh (the index
        header names only the segments it holds)."""
        with self._lock:
            snap = self._refreshed
            if snap is None:
                return
            rows = snap.rows.copy()
            for record in records:
                rows[record.id] = fold_rows(rows.get(record.id),
                                            summary_row(record, None, segment=name))
            self._located = None
            self._refreshed = _Snapshot(rows, snap.reread + len(records), snap.index,
                                        snap.markers, tuple(sorted({*snap.segments, name})))

    def summaries(self) -> Rows:
        """Asset id -> index row (status, origin, kind, key, sha256, size, content type,
        route, error code, updated_at), from the index and one listing (see module
        docstring); kept compact (``rows.Rows``), each row a new dict when read."""
        return self._refresh().rows

    def settled(self) -> bytes | None:
        """The sha256 of the index when the summaries are exactly its rows (no record read
        or absorbed since it was read or written), else None."""
        snap = self._refresh()
        return snap.index.digest if snap.reread == 0 and snap.index.size else None

    def build(self, *, full: bool = False) -> IndexStats:
        """Compact the records into ``manifest/index.jsonl`` (rewritten only when it changed):
        the last index plus the records whose change markers are listed, then those markers
        are deleted. ``full`` lists and compares every record instead (repairs an index that
        lost a change, e.g. to two builds racing)."""
        snap = self._read_rows(full=True) if full else self._refresh()
        rows, seen = snap.rows, snap.index
        written = False
        # Every row came from the index as it is: nothing to rebuild.
        if snap.reread or len(rows) + bool(snap.segments) != seen.lines:
            body = encode_index(rows, snap.segments)
            seen, old = Seen.of(body), seen
            written = seen != old
            if written:
                self.store.put_bytes(INDEX_KEY, body, "application/x-ndjson", overwrite=True)
        # Only after the index holds their records; a marker written since has another name.
        if snap.markers:
            self.store.delete(snap.markers)
        self._refreshed = _Snapshot(rows, 0, seen, (), snap.segments)
        counts = {status: 0 for status in RANK}
        for status, n in rows.count_statuses().items():
            counts[status] = counts.get(status, 0) + n
        return IndexStats(len(rows), counts["archived"], counts["failed"], counts["skipped"],
                          snap.reread, written)

    def _refresh(self) -> _Snapshot:
        cached = self._refreshed
        if cached is not None:
            return cached
        fresh = self._read_rows()
        with self._lock:
            self._refreshed = fresh
        return fresh

    def _read_rows(self, full: bool = False) -> _Snapshot:
        """The index's rows updated with every record written since it was built: read from
        the change markers and the segments the index does not hold yet (one LIST each,
        however large the archive), or, without an index or with ``full``, by listing every
        record and re-reading those whose version differs, and reading every segment."""
        # Three round trips at once (a remote store answers each after its latency; the
        # index is parsed here while the listings wait), not one after the other. A build
        # racing with this read is no worse off than in any order (see the module docstring).
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="index-read") as pool:
            listing = pool.submit(lambda: tuple(info.key for info in
                                                self.store.list(CHANGED_PREFIX)))
            segments = pool.submit(lambda: sorted(name for info in self.store.list(
                SEGMENTS_PREFIX) if (name := segment_name(info.key)) is not None))
            index, held, seen = self._read_index()
            markers, listed = listing.result(), segments.result()
        if seen.size and not full:
            rows = index
            changed = sorted({m[len(CHANGED_PREFIX):].split(".", 1)[0] for m in markers})
            keys = [record_key(a) for a in changed if ID.fullmatch(a)]
            for record in self.records.load_many(keys):
                if record is not None:
                    rows[record.id] = fold_rows(rows.get(record.id), summary_row(record, None))
            holds = set(held)
            fresh = [name for name in listed if name not in holds]
            self._fold_segments(rows, fresh)
            return _Snapshot(rows, len(keys) + len(fresh), seen, markers,
                             tuple(sorted(set(held) | set(fresh))))
        rows = Rows()
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
                rows[record.id] = fold_rows(index.get(record.id), summary_row(record, info))
        self._fold_segments(rows, listed)
        return _Snapshot(rows, len(stale) + len(listed), seen, markers,
                         tuple(listed))

    def _fold_segments(self, rows: Rows, names: list[str]) -> None:
        loaded = parallel_map(self.segments.by_id, names, self.records.workers)
        for name, grouped in zip(names, loaded, strict=True):
            for asset, versions in grouped.items():
                for record in versions:
                    row = summary_row(record, None, segment=name)
                    rows[asset] = fold_rows(rows.get(asset), row)

    def load(self, asset_id: str) -> Record | None:
        """The record of an asset: its per-asset file and its versions in segments, folded
        (``segments.fold``); None when there is none. ManifestError if the file is
        unreadable. Where the versions are comes from the cached summaries, else from the
        index and the segments it does not hold (never from reading every record)."""
        snap = self._refreshed
        places = snap.rows.get(asset_id, {}).get("segments", ()) if snap is not None \
            else self._locate().get(asset_id, ())
        versions: list[Record] = []
        record = self.records.load(asset_id)
        if record is not None:
            versions.append(record)
        for name in places:
            versions.extend(self.segments.by_id(name).get(asset_id, ()))
        return fold(versions)

    def _locate(self) -> dict[str, list[str]]:
        """Asset id -> the segments holding its versions: the index's rows, then the
        segments the index does not hold yet (read once each); kept until ``invalidate``."""
        with self._lock:
            located = self._located
        if located is not None:
            return located
        rows, held, _ = self._read_index()
        located = rows.located()
        fresh = sorted(name for info in self.store.list(SEGMENTS_PREFIX)
                       if (name := segment_name(info.key)) is not None and name not in held)
        for name, grouped in zip(fresh, parallel_map(self.segments.by_id, fresh,
                                                     self.records.workers), strict=True):
            for asset in grouped:
                located.setdefault(asset, []).append(name)
        with self._lock:
            self._located = located
        return located

    def _read_index(self) -> tuple[Rows, list[str], Seen]:
        """The index's rows, the segments its header names and its ``Seen``, read and parsed
        a few megabytes at a time: its bytes (165 MB at 100,000 generated articles) are never
        all in memory. No index: no rows, and a ``Seen`` of no bytes."""
        rows, names = Rows(), list[str]()
        digest, lines, size, tail = hashlib.sha256(), 0, 0, b""
        try:
            with self.store.open(INDEX_KEY) as fh:
                while block := fh.read(_BLOCK):
                    digest.update(block)
                    lines += block.count(b"\n")
                    size += len(block)
                    cut = block.rfind(b"\n") + 1
                    if cut:
                        names = rows.load_lines(tail + block[:cut], names)
                        tail = block[cut:]
                    else:
                        tail += block
        except ObjectMissing:
            return Rows(), [], Seen.of(b"")
        names = rows.load_lines(tail, names)
        return rows, names, Seen(lines, digest.digest(), size)


def summary_row(record: Record, info: ObjectInfo | None,
                segment: str | None = None) -> dict[str, Any]:
    """The index row of a record whose object was listed as ``info`` (None when it was read
    through a change marker: a later full build then reads it once more), or of its version
    in ``segment``."""
    row: dict[str, Any] = {"id": record.id}
    for name in _ROW_FIELDS:
        row[name] = getattr(record, name)
    row["error"] = (record.error or {}).get("code")
    row["record_version"] = _version(info) if info is not None else None
    row["record_size"] = info.size if info is not None else None
    row["file"] = segment is None
    row["segments"] = [segment] if segment is not None else []
    return row


def fold_rows(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Two rows of one asset as one, like ``records.merge`` of their records: an
    ``archived`` row wins (the older of two), otherwise the newer; the row remembers every
    place the asset's versions are."""
    if old is None:
        return new
    first, second = (old, new) if (old.get("updated_at") or "") <= (
        new.get("updated_at") or "") else (new, old)
    base = first if first.get("status") == "archived" else second
    out = dict(base)
    out["updated_at"] = second.get("updated_at") or first.get("updated_at")
    out["file"] = old.get("file", True) or new.get("file", True)
    out["segments"] = sorted(set(old.get("segments") or ()) | set(new.get("segments") or ()))
    file_row = new if new.get("record_version") is not None else old
    out["record_version"] = file_row.get("record_version")
    out["record_size"] = file_row.get("record_size")
    return out


def encode_index(rows: Rows | dict[str, dict[str, Any]], segments: tuple[str, ...]) -> bytes:
    """The index's bytes: a header naming the segments it holds (when there are any), then
    one row per asset by id, its segments given by their place in the header. ``file`` when
    true, empty ``segments`` and the record version of a row read through a segment or a
    marker (None) are left out: readers ``.get`` them."""
    place = {name: n for n, name in enumerate(segments)}
    lines = [dumps({"segments": list(segments)})] if segments else []
    for asset in sorted(rows):
        row = dict(rows[asset])
        for name in ("record_version", "record_size"):
            if row.get(name, 0) is None:
                del row[name]
        if row.get("file") is True:
            del row["file"]
        if row.get("segments"):
            row["segments"] = [place[name] for name in row["segments"] if name in place]
        else:
            row.pop("segments", None)
        lines.append(dumps(row))
    return b"".join(line + b"\n" for line in lines)


def decode_index(data: bytes) -> tuple[Rows, list[str]]:
    """Rows by id and the segments named by the header (``encode_index``), a megabyte of
    lines per parse; a damaged line costs only its record a re-read."""
    rows = Rows()
    names = rows.load_lines(data, [])
    return rows, names


def _version(info: ObjectInfo) -> str:
    # An S3 ETag changes with the content; a local one with every write (see LocalStore).
    return info.etag or repr(info.mtime)
