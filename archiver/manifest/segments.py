"""Record segments: the in-process runner's records, many to an object, written in batches.

Layout::

    manifest/segments/<time>-<writer>-<n>.jsonl   one full Record per line, written once
    manifest/writers/<writer>                     while a batching run is going (refreshed)

A ``SegmentLog`` stages the records of one run and writes them as one create-only segment
when ``max_records`` are staged or the oldest has waited ``linger`` seconds: one request per
batch instead of a record and a change marker per asset. Nothing is ever rewritten: a record
may have versions in its per-asset file (``manifest/assets/<id>.json``, which Celery workers,
``Manifest.save`` outside a batching run and older versions write) and in any number of
segments; readers fold them oldest first with ``records.merge`` (``fold``), so an
``archived`` version is never made worse by a later one.

Durability: a staged record is durable once ``durable()`` reaches its ticket (``add``). The
runner reports a record only then, so a crash loses at most the records staged since the last
segment, none of which was reported. Their objects are stored, with the asset id in their
metadata: the writer's marker, left behind by the crash, makes the next run look for them
(``Manifest.orphans``) and rebuild their records instead of fetching them again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from archiver.errors import ObjectMissing, StoreError
from archiver.manifest.records import JSON_TYPE, dumps, merge
from archiver.models import Record
from archiver.store.base import Store, process_alive

log = logging.getLogger(__name__)

SEGMENTS_PREFIX = "manifest/segments/"
WRITERS_PREFIX = "manifest/writers/"
SEGMENT_TYPE = "application/x-ndjson"
MAX_RECORDS = 512  # records per segment at most
LINGER = 0.5  # seconds a staged record waits for others before its segment is written
HEARTBEAT = 60.0  # a live writer refreshes its marker this often
STALE_AFTER = 300.0  # a marker not refreshed for this long belongs to a writer that died
FLUSH_ATTEMPTS = 3  # failed writes in a row before ``flush`` gives up and raises


def segment_name(key: str) -> str | None:
    """The name of a segment key (``<time>-<writer>-<n>``), None for anything else."""
    if not key.startswith(SEGMENTS_PREFIX) or not key.endswith(".jsonl"):
        return None
    name = key[len(SEGMENTS_PREFIX):-6]
    return name if name and "/" not in name else None


def segment_key(name: str) -> str:
    return f"{SEGMENTS_PREFIX}{name}.jsonl"


def parse_segment(data: bytes) -> list[Record]:
    """The records of a segment, in the order written (unreadable lines are skipped: a
    damaged line costs that record's version, which the next run redoes)."""
    out = []
    for line in data.splitlines():
        try:
            out.append(Record.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def fold(versions: Iterable[Record]) -> Record | None:
    """One record from its versions: merged oldest first (by ``updated_at``), never worse."""
    out: Record | None = None
    for version in sorted(versions, key=lambda r: r.updated_at or ""):
        out = version if out is None else merge(out, version)
        if version.updated_at and (out.updated_at or "") < version.updated_at:
            out = _with_updated(out, version.updated_at)
    return out


def _with_updated(record: Record, updated_at: str) -> Record:
    from dataclasses import replace

    return replace(record, updated_at=updated_at)


class SegmentCache:
    """Parsed segments by name, the most recently used ``size`` of them (segments never
    change, so a cached one is never stale). Safe to share between threads."""

    def __init__(self, store: Store, size: int = 64) -> None:
        self.store = store
        self.size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, dict[str, list[Record]]] = OrderedDict()

    def by_id(self, name: str) -> dict[str, list[Record]]:
        """Asset id -> its versions in segment ``name`` (empty when the segment is gone)."""
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None:
                self._cache.move_to_end(name)
                return hit
        try:
            records = parse_segment(self.store.get_bytes(segment_key(name)))
        except ObjectMissing:
            records = []
        grouped: dict[str, list[Record]] = {}
        for record in records:
            grouped.setdefault(record.id, []).append(record)
        with self._lock:
            self._cache[name] = grouped
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return grouped


class SegmentLog:
    """Stages records and writes them in segments from a thread of its own (see module
    docstring). ``open`` writes the writer's marker before any object of the run is stored;
    ``close`` writes what is staged and removes the marker. Safe to share between threads."""

    def __init__(self, store: Store, *, max_records: int | None = None,
                 linger: float | None = None) -> None:
        self.store = store
        self.max_records = max(1, MAX_RECORDS if max_records is None else max_records)
        self.linger = LINGER if linger is None else linger
        self.writer = uuid.uuid4().hex[:16]
        self.written: list[str] = []  # names of the segments this log wrote
        # Told of each segment once written (name, records): the index folds them in.
        self.on_written: Callable[[str, list[Record]], None] | None = None
        self._cond = threading.Condition()
        self._staged: list[Record] = []
        self._oldest = 0.0
        self._tickets = 0  # records staged so far
        self._durable = 0  # records written so far (tickets up to this one)
        self._seq = 0
        self._urgent = False
        self._closing = False
        self._failures = 0
        self._error: StoreError | None = None
        self._marked = 0.0
        self._thread: threading.Thread | None = None

    @property
    def marker_key(self) -> str:
        return f"{WRITERS_PREFIX}{self.writer}"

    def open(self) -> None:
        """Write the writer's marker (one request) and start the writing thread."""
        self._mark()
        self._thread = threading.Thread(target=self._loop, name="segments", daemon=True)
        self._thread.start()

    def add(self, record: Record) -> int:
        """Stage ``record``; its ticket, durable once ``durable()`` reaches it."""
        with self._cond:
            if not self._staged:
                self._oldest = time.monotonic()
            self._staged.append(record)
            self._tickets += 1
            # The first record starts the linger clock of a thread that may be asleep until
            # its next heartbeat; a full batch is due now.
            if len(self._staged) == 1 or len(self._staged) >= self.max_records:
                self._cond.notify_all()
            return self._tickets

    def staged(self) -> int:
        """The ticket of the last record staged."""
        with self._cond:
            return self._tickets

    def durable(self) -> int:
        """Every ticket up to this one is written."""
        with self._cond:
            return self._durable

    def wait(self, ticket: int) -> None:
        """Return once ``ticket`` is durable; raise the store's error when writing its segment
        failed ``FLUSH_ATTEMPTS`` times in a row (the records stay staged)."""
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            while self._durable < ticket:
                if self._error is not None and self._failures >= FLUSH_ATTEMPTS:
                    raise self._error
                if self._thread is None or not self._thread.is_alive():
                    raise StoreError("the segment writer is not running")
                self._cond.wait(0.5)

    def flush(self) -> None:
        """Write everything staged now; raise as ``wait`` does."""
        self.wait(self.staged())

    def close(self) -> None:
        """Write what is staged, stop the thread, remove the marker. When the last records
        cannot be written the marker stays (the next run recovers from it) and the error is
        raised."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join(timeout=30)
        self.store.delete([self.marker_key])

    def _mark(self) -> None:
        body = dumps({"writer": self.writer, "host": socket.gethostname(), "pid": os.getpid(),
                      "started": datetime.now(UTC).isoformat(timespec="seconds")})
        self.store.put_bytes(self.marker_key, body, JSON_TYPE, overwrite=True)
        self._marked = time.monotonic()

    def _due(self) -> float | None:
        """Seconds until the staged batch is due (0: now), None when nothing is staged."""
        if not self._staged:
            return None
        if self._urgent or self._closing or len(self._staged) >= self.max_records:
            return 0.0
        return max(0.0, self._oldest + self.linger - time.monotonic())

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    due = self._due()
                    if due == 0.0:
                        break
                    if due is None and self._closing:
                        return
                    heartbeat = self._marked + HEARTBEAT - time.monotonic()
                    if heartbeat <= 0:
                        break
                    self._cond.wait(min(heartbeat, due if due is not None else heartbeat))
                batch = self._staged[:self.max_records]
                del self._staged[:len(batch)]
                upto = self._durable + len(batch)
                if not self._staged:
                    self._urgent = False
                else:
                    self._oldest = time.monotonic()
            try:
                if time.monotonic() - self._marked >= HEARTBEAT:
                    self._mark()
                if batch:
                    self._write(batch)
            except Exception as exc:  # kept staged; retried after a pause
                error = exc if isinstance(exc, StoreError) else StoreError(
                    f"cannot write a record segment: {type(exc).__name__}: {exc}")
                log.warning("record segment not written (%s); retrying", error)
                with self._cond:
                    self._staged[:0] = batch
                    self._oldest = time.monotonic()
                    self._failures += 1
                    self._error = error
                    self._cond.notify_all()
                    self._cond.wait(min(0.2 * 2 ** self._failures, 5.0))
                continue
            with self._cond:
                self._durable = upto
                self._failures = 0
                self._error = None
                self._cond.notify_all()

    def _write(self, batch: list[Record]) -> None:
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{self.writer}-{self._seq:06d}"
        body = b"".join(dumps(record.to_dict()) + b"\n" for record in batch)
        self.store.put_bytes(segment_key(name), body, SEGMENT_TYPE)
        self.written.append(name)
        if self.on_written is not None:
            self.on_written(name, batch)


def stale_writers(store: Store, now: float | None = None) -> list[tuple[str, float]]:
    """(marker key, start time as epoch seconds) of the writers that died with records
    maybe unwritten: a marker not refreshed for ``STALE_AFTER`` seconds, or one written on
    this host by a process that is gone."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    out = []
    for info in store.list(WRITERS_PREFIX):
        started = info.mtime - STALE_AFTER
        dead = now - info.mtime >= STALE_AFTER
        try:
            data = json.loads(store.get_bytes(info.key))
            started = datetime.fromisoformat(data["started"]).timestamp()
            dead = dead or (data.get("host") == host and not process_alive(int(data["pid"])))
        except (ObjectMissing, ValueError, TypeError, KeyError):
            pass
        if dead:
            out.append((info.key, started))
    return out
