"""Stored objects read and verified ahead of the WARC writer, on a thread of their own.

The reader walks the selected records in order and hands each one over with what the writer
needs: the HTTP response block rebuilt from its exchange and, the first time its bytes are met,
the object verified against the record's sha256 with the record's block digest (HTTP header
bytes, then the payload). An object up to ``SMALL`` bytes is read once, whole, and both digests
come from that one read; a larger one is hashed in a streaming pass and read again by the
writer (a stream that cannot seek is spooled to a temporary file), so memory stays bounded
whatever the size. At most ``AHEAD`` bytes of payload wait for the writer.

An object that is missing or no longer hashes to its sha256 is handed over as a problem, never
as bytes; its sha256 is not marked as met, so a later record with the same bytes tries again.
"""

from __future__ import annotations

import hashlib
import io
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from warcio.statusandheaders import StatusAndHeaders

from archiver.errors import ObjectMissing
from archiver.export.headers import response_block, usable
from archiver.models import Record
from archiver.store.base import Store

CHUNK = 1024 * 1024
SMALL = 4 * 1024 * 1024  # objects up to this size are read once, into memory
AHEAD = 16 * 1024 * 1024  # payload bytes read ahead of the writer at most
AHEAD_RECORDS = 512  # records read ahead at most
SPOOL_MEMORY = 8 * 1024 * 1024  # a non-seekable object past this spills to disk
_POLL = 0.5  # seconds between looks at the stop flag while waiting


class Corrupt(Exception):
    """An object no longer hashes to its record's sha256."""


@dataclass
class Payload:
    """A verified object: its bytes (``data``) or an open stream at its start (``file``)."""

    size: int
    block_digest: str
    data: bytes | None = None
    file: IO[bytes] | None = None

    def stream(self) -> IO[bytes]:
        if self.file is not None:
            return self.file
        return io.BytesIO(self.data or b"")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@dataclass
class Loaded:
    """One selected record, ready to write: its response block (None: no usable exchange),
    and either the verified object (the first time its bytes are met), a problem
    (``missing`` or ``corrupt``, with a detail), or neither (bytes already met)."""

    record: Record
    block: StatusAndHeaders | None
    payload: Payload | None = None
    problem: tuple[str, str] | None = None
    held: int = 0  # bytes of the read-ahead budget this record holds


def read_verified(store: Store, key: str, sha256: str | None, prefix: bytes,
                  size: int | None = None) -> Payload:
    """The object at ``key``, checked against ``sha256`` (when given), with the digest of
    ``prefix`` + its bytes. Read whole when ``size`` (the size expected) is at most SMALL,
    else streamed. Raises Corrupt when it does not hash to ``sha256``, ObjectMissing when it
    is gone."""
    source = store.open(key)
    try:
        head = b""
        if size is not None and 0 <= size <= SMALL:
            head = _read_up_to(source, size + 1)
            if len(head) <= size:  # the whole object
                source.close()
                _verify(key, hashlib.sha256(head), sha256)
                return Payload(len(head), _digest(prefix, head), data=head)
        return _streamed(source, key, sha256, prefix, head)
    except BaseException:
        source.close()
        raise


def _read_up_to(source: IO[bytes], limit: int) -> bytes:
    """Up to ``limit`` bytes, fewer only at the end of the stream: a BufferedReader (both
    stores') reads until then, other streams may return less and are read again."""
    data = source.read(limit)
    if len(data) in (0, limit) or isinstance(source, io.BufferedReader):
        return data
    parts = [data]
    got = len(data)
    while got < limit and (chunk := source.read(limit - got)):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _streamed(source: IO[bytes], key: str, sha256: str | None, prefix: bytes,
              head: bytes) -> Payload:
    try:
        seekable = source.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    spool: IO[bytes] | None = None
    if not seekable:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
    try:
        payload = hashlib.sha256()
        block = hashlib.sha256(prefix) if prefix else None
        size = 0
        chunk = head or source.read(CHUNK)
        while chunk:
            payload.update(chunk)
            if block is not None:
                block.update(chunk)
            if spool is not None:
                spool.write(chunk)
            size += len(chunk)
            chunk = source.read(CHUNK)
        _verify(key, payload, sha256)
        if spool is not None:
            source.close()
            source, spool = spool, None
        source.seek(0)
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    return Payload(size, "sha256:" + (block or payload).hexdigest(), file=source)


def _verify(key: str, payload: hashlib._Hash, sha256: str | None) -> None:
    if sha256 is not None and payload.hexdigest() != sha256:
        raise Corrupt(f"{key} hashes to {payload.hexdigest()}, not {sha256}")


def _digest(prefix: bytes, data: bytes) -> str:
    block = hashlib.sha256(prefix)
    block.update(data)
    return "sha256:" + block.hexdigest()


class _Budget:
    """Bytes read ahead and not yet written; ``take`` waits while the budget is spent (one
    record always fits, however large)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, n: int, stop: threading.Event) -> None:
        with self._cond:
            while self.used and self.used + n > self.limit and not stop.is_set():
                self._cond.wait(_POLL)
            self.used += n

    def give(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify()


_DONE = object()


class ReadAhead:
    """Iterates the ``Loaded`` form of ``records`` (in order), prepared on a thread of its
    own. Raises in the iterating thread what reading raised (ObjectMissing and Corrupt are
    problems, not errors). A context manager: leaving stops the thread and closes what it
    opened."""

    def __init__(self, records: Iterable[Record], store: Store) -> None:
        self._records = records
        self._store = store
        self._queue: queue.Queue[object] = queue.Queue(AHEAD_RECORDS)
        self._budget = _Budget(AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="export-read", daemon=True)

    def __enter__(self) -> ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        while self._thread.is_alive() or not self._queue.empty():
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if isinstance(item, Loaded) and item.payload is not None:
                item.payload.close()
        self._thread.join()

    def __iter__(self) -> Iterator[Loaded]:
        while (item := self._queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Loaded)
            try:
                yield item
            finally:
                self._budget.give(item.held)

    def _run(self) -> None:
        records = iter(self._records)
        try:
            met: set[str] = set()
            for record in records:
                if self._stop.is_set():
                    return
                self._put(self._load(record, met))
            self._put(_DONE)
        except BaseException as exc:  # handed to the iterating thread
            self._put(exc)
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # a generator stopped early lets go of what it holds now

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue
        if isinstance(item, Loaded) and item.payload is not None:
            item.payload.close()

    def _load(self, record: Record, met: set[str]) -> Loaded:
        assert record.key and record.sha256
        block = response_block(record.exchange, record.size or 0) \
            if record.exchange is not None and usable(record.exchange) else None
        if block is not None:
            block.compute_headers_buffer()
        loaded = Loaded(record, block)
        if record.sha256 in met:
            return loaded
        loaded.held = min(record.size or 0, SMALL)
        self._budget.take(loaded.held, self._stop)
        try:
            loaded.payload = read_verified(self._store, record.key, record.sha256,
                                           block.headers_buff if block is not None else b"",
                                           record.size)
        except ObjectMissing:
            loaded.problem = ("missing", f"object {record.key} is not in the store")
        except Corrupt as exc:
            loaded.problem = ("corrupt", str(exc))
        else:
            met.add(record.sha256)
        return loaded
