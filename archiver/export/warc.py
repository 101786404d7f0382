"""Write archived assets as WARC 1.1 records with warcio, one gzip member per record.

Per asset, the first time its bytes are met: a ``response`` record (HTTP headers as received,
the stored bytes as payload) followed by its ``request`` record, or a ``resource`` record when
the record has no usable exchange (records older than exchanges, video pages). The same bytes
met again (another origin, or the origin standing behind a proxy, mirror or redirect) become a
``revisit`` record (identical-payload-digest profile) referring to the first one. Related
objects (a video's info JSON and thumbnail) follow as ``metadata`` records.

Objects are read and verified against their record's sha256 ahead of the writer, on a thread
of their own (``objects.py``): a small object is read once for both digests and the write, a
large one is streamed twice, never held in memory. An object that is missing or no longer
matches its sha256 is left out and reported, never exported as if it were sound.

Already-compressed payloads (JPEG, PNG, GIF, WebP, video...) go into their gzip member
uncompressed (stored deflate blocks, ``output.py``): compressing them again gains under 1% and
would cap the export at zlib's ~20 MB/s; everything else is compressed.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver import __version__
from archiver.errors import ObjectMissing
from archiver.export.cdxj import Entry
from archiver.export.headers import request_block
from archiver.export.objects import CHUNK, Corrupt, Loaded, Payload, ReadAhead, read_verified
from archiver.export.output import Member, Output, Writable
from archiver.export.select import captured_at
from archiver.models import Record
from archiver.store.base import Store

WARC_VERSION = "1.1"
COMPRESS_LEVEL = 6
STORED_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif",
                "image/heic", "image/heif", "video/", "audio/")
HEADERS_SIZE = 4096  # about the size of a record's headers, for sizing its gzip member
MAX_CITATIONS = 100  # citation headers per record; the count says how many there were
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"
_EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()
_CONTENT_SHA = re.compile(r"/([0-9a-f]{64})\.[a-z0-9]+$")

# Provenance headers (README: "What each WARC header carries").
ORIGIN = "WARC-Archiver-Origin"
ROUTE = "WARC-Archiver-Route"
ASSET = "WARC-Archiver-Asset"
KIND = "WARC-Archiver-Kind"
KEY = "WARC-Archiver-Key"
CITATION = "WARC-Archiver-Citation"
CITATIONS = "WARC-Archiver-Citations"
RELATED = "WARC-Archiver-Related"


def warc_uri(url: str) -> str:
    """``url`` safe for a WARC header: spaces, controls and non-ASCII percent-encoded, existing
    escapes kept."""
    return quote(url, safe=_URI_SAFE)


def warc_date(when: datetime) -> str:
    """WARC 1.1 date: UTC, microseconds when there are any."""
    when = when.astimezone(UTC)  # formatted by hand: strftime costs 15 us a call
    stamp = (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:"
             f"{when.minute:02d}:{when.second:02d}")
    return f"{stamp}.{when.microsecond:06d}Z" if when.microsecond else stamp + "Z"


def timestamp14(when: datetime) -> str:
    when = when.astimezone(UTC)
    return (f"{when.year:04d}{when.month:02d}{when.day:02d}{when.hour:02d}{when.minute:02d}"
            f"{when.second:02d}")


def _header_text(value: str) -> str:
    return quote(value, safe=_URI_SAFE + " ")


def _headers_digest(block: StatusAndHeaders | None) -> str:
    """The block digest of a record whose block is HTTP headers only (request, revisit), so
    that warcio need not compute one (sha1, in pure-Python base32)."""
    if block is None:
        return _EMPTY_DIGEST
    block.compute_headers_buffer()
    return "sha256:" + hashlib.sha256(block.headers_buff).hexdigest()


def _provenance(record: Record) -> list[tuple[str, str]]:
    fields = [(ORIGIN, warc_uri(record.origin)), (ASSET, record.id),
              (KIND, _header_text(record.kind))]
    if record.route:
        fields.append((ROUTE, _header_text(record.route)))
    if record.key:
        fields.append((KEY, record.key))
    fields.append((CITATIONS, str(len(record.citations))))
    fields += [(CITATION, _header_text(c.article)) for c in record.citations[:MAX_CITATIONS]]
    return fields


def _record_ids() -> Iterator[str]:
    """WARC-Record-IDs (random UUIDs, as warcio makes them), 256 per call to the system's
    random source."""
    while True:
        random = os.urandom(16 * 256)
        for start in range(0, len(random), 16):
            yield f"<urn:uuid:{uuid.UUID(bytes=random[start:start + 16], version=4)}>"


class _LargeReads:
    """A payload stream read CHUNK bytes at a time whatever warcio asks (16 KB), so a record
    costs a few calls per megabyte instead of sixty-four."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def read(self, size: int = -1) -> bytes:
        return self.file.read(CHUNK if size is not None and size >= 0 else -1)

    def tell(self) -> int:
        return self.file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def close(self) -> None:
        self.file.close()


@dataclass
class Stats:
    """What an export wrote, and what it had to leave out."""

    assets: int = 0
    records: int = 0
    types: dict[str, int] = field(default_factory=dict)
    payload_bytes: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"assets": self.assets, "records": self.records, "types": dict(self.types),
                "payload_bytes": self.payload_bytes, "problems": len(self.problems)}


@dataclass(frozen=True)
class _First:
    """The record that first carried some bytes, for revisits to refer to."""

    uri: str
    date: str
    record_id: str


class WarcExport:
    """Writes one WARC file, used as a context manager: ``warcinfo`` first, then ``add_all``
    the records; leaving the ``with`` block writes what is still on its way. ``entries``
    holds the index entries of the records written (when ``index`` is set); ``fd`` is the
    file descriptor of the file written, if there is one (see ``output.Output``)."""

    def __init__(self, out: Writable, store: Store, filename: str, *, gzip: bool = True,
                 index: bool = False, fd: int | None = None) -> None:
        self.store = store
        self.filename = filename
        self.gzip = gzip
        self.stats = Stats()
        self.entries: list[Entry] | None = [] if index else None
        self.captured: dict[str, datetime] = {}  # asset id -> capture time, of exported assets
        self._out = Output(out, fd)
        self._writer = WARCWriter(None, gzip=False, warc_version=WARC_VERSION)
        self._first: dict[str, _First] = {}
        self._ids = _record_ids().__next__

    def __enter__(self) -> WarcExport:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._out.__exit__(kind, exc, tb)

    def warcinfo(self, fields: dict[str, str]) -> None:
        info = {"software": f"archiver {__version__} (warcio {version('warcio')})",
                "format": f"WARC File Format {WARC_VERSION}",
                "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
                              "warc-format/warc-1.1/", **fields}
        self._emit(self._writer.create_warcinfo_record(self.filename, info), COMPRESS_LEVEL)

    def add_all(self, records: Iterable[Record]) -> None:
        """Write the records of each archived asset (see the module docstring), in order; the
        objects are read and verified ahead, on another thread."""
        with ReadAhead(records, self.store) as ahead:
            for loaded in ahead:
                try:
                    self._add(loaded)
                finally:
                    if loaded.payload is not None:
                        loaded.payload.close()

    def _add(self, loaded: Loaded) -> None:
        record, block = loaded.record, loaded.block
        assert record.key and record.sha256
        when = captured_at(record)
        date, target = warc_date(when), warc_uri(record.fetched_url or record.origin)
        digest = f"sha256:{record.sha256}"
        if loaded.problem is not None:
            self._problem(record, *loaded.problem)
            return
        if loaded.payload is not None:
            first = self._payload(record, target, date, when, digest, block, loaded.payload)
            self._first[record.sha256] = first
            self._related(record, first)
        else:
            first = self._first[record.sha256]
            self._revisit(record, target, first, date, when, digest, block)
        origin = warc_uri(record.origin)
        if origin != target:
            self._revisit(record, origin, first, date, when, digest, block)
        self.captured[record.id] = when
        self.stats.assets += 1
        self.stats.payload_bytes += record.size or 0

    def add_resource(self, uri: str, when: datetime, content_type: str, data: bytes,
                     headers: Iterable[tuple[str, str]] = ()) -> None:
        """A ``resource`` record made by the export itself (an article's page)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        rec = self._new("resource", warc_uri(uri), [
            ("WARC-Date", warc_date(when)), ("WARC-Payload-Digest", digest),
            ("WARC-Block-Digest", digest),
            *((name, _header_text(value)) for name, value in headers)],
            payload=io.BytesIO(data), length=len(data), content_type=content_type)
        offset, length = self._emit(rec, COMPRESS_LEVEL)
        self._index(warc_uri(uri), when, content_type, 200, digest, offset, length)

    # -- records ---------------------------------------------------------------------------

    def _payload(self, record: Record, target: str, date: str, when: datetime, digest: str,
                 block: StatusAndHeaders | None, payload: Payload) -> _First:
        content_type = record.content_type or "application/octet-stream"
        rec = self._new(
            "response" if block is not None else "resource", target,
            [("WARC-Date", date), ("WARC-Payload-Digest", digest),
             ("WARC-Block-Digest", payload.block_digest), *_provenance(record)],
            payload=_LargeReads(payload.stream()), length=payload.size, http=block,
            content_type=None if block is not None else content_type)
        stored = record.content_type is not None \
            and record.content_type.startswith(STORED_TYPES)
        offset, length = self._emit(rec, 0 if stored else COMPRESS_LEVEL)
        record_id = rec.rec_headers.get_header("WARC-Record-ID")
        status = int(block.get_statuscode()) if block is not None else 200
        self._index(target, when, content_type, status, digest, offset, length)
        if block is not None and record.exchange is not None:
            sent = request_block(record.exchange)
            request = self._new("request", target, [
                ("WARC-Date", date), ("WARC-Concurrent-To", record_id),
                ("WARC-Payload-Digest", _EMPTY_DIGEST),
                ("WARC-Block-Digest", _headers_digest(sent))], http=sent)
            self._emit(request, COMPRESS_LEVEL)
        return _First(target, date, record_id)

    def _revisit(self, record: Record, uri: str, first: _First, date: str, when: datetime,
                 digest: str, block: StatusAndHeaders | None) -> None:
        rec = self._new("revisit", uri, [
            ("WARC-Date", date), ("WARC-Profile", self._writer.REVISIT_PROFILE_1_1),
            ("WARC-Refers-To", first.record_id), ("WARC-Refers-To-Target-URI", first.uri),
            ("WARC-Refers-To-Date", first.date), ("WARC-Payload-Digest", digest),
            ("WARC-Block-Digest", _headers_digest(block)), *_provenance(record)], http=block)
        offset, length = self._emit(rec, COMPRESS_LEVEL)
        status = int(block.get_statuscode()) if block is not None else None
        self._index(uri, when, "warc/revisit", status, digest, offset, length)

    def _related(self, record: Record, first: _First) -> None:
        for name, key in sorted(record.related.items()):
            found = _CONTENT_SHA.search(key)
            try:
                related = read_verified(self.store, key, found.group(1) if found else None, b"")
            except (ObjectMissing, Corrupt) as exc:
                self._problem(record, "related", f"{name} ({key}): {exc}")
                continue
            try:
                content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
                rec = self._new("metadata", first.uri, [
                    ("WARC-Date", first.date), ("WARC-Refers-To", first.record_id),
                    ("WARC-Payload-Digest", related.block_digest),
                    ("WARC-Block-Digest", related.block_digest), (RELATED, name), (KEY, key)],
                    payload=_LargeReads(related.stream()), length=related.size,
                    content_type=content_type)
                self._emit(rec, COMPRESS_LEVEL)
            finally:
                related.close()

    def _new(self, rtype: str, uri: str, fields: list[tuple[str, str]], *,
             payload: IO[bytes] | _LargeReads | None = None, length: int = 0,
             http: StatusAndHeaders | None = None,
             content_type: str | None = None) -> ArcWarcRecord:
        """A record for warcio to write, with its WARC headers complete (type, id, target,
        then ``fields``, digests included): warcio's record builder would scan and rewrite
        them several times per record, a tenth of the export's time."""
        headers = StatusAndHeaders("", [("WARC-Type", rtype), ("WARC-Record-ID", self._ids()),
                                        ("WARC-Target-URI", uri), *fields],
                                   protocol=self._writer.warc_version)
        rec = ArcWarcRecord("warc", rtype, headers, payload or io.BytesIO(), http,
                            content_type or self._writer.WARC_RECORDS[rtype], length)
        rec.payload_length = length
        return rec

    # -- plumbing --------------------------------------------------------------------------

    def _emit(self, rec: ArcWarcRecord, level: int) -> tuple[int, int]:
        start = self._out.position
        size = (rec.length or 0) + HEADERS_SIZE
        member = Member(self._out, level if self.gzip else None, size)
        self._writer.out = member
        self._writer.write_record(rec)
        member.finish()
        self.stats.records += 1
        kind = rec.rec_type
        self.stats.types[kind] = self.stats.types.get(kind, 0) + 1
        return start, self._out.position - start

    def _index(self, uri: str, when: datetime, mime: str, status: int | None, digest: str,
               offset: int, length: int) -> None:
        if self.entries is not None:
            self.entries.append(Entry(uri, timestamp14(when), mime, status, digest, offset,
                                      length, self.filename))

    def _problem(self, record: Record, problem: str, detail: str) -> None:
        self.stats.problems.append({"problem": problem, "origin": record.origin,
                                    "key": record.key or "", "detail": detail})

