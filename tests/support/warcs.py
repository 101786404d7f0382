"""Reading an exported WARC back with warcio, digests verified, for the export tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from warcio.archiveiterator import ArchiveIterator


@dataclass
class Read:
    """One WARC record as read back: its type, WARC headers, HTTP status and payload."""

    type: str
    headers: dict[str, list[str]]
    status: int | None
    payload: bytes
    offset: int

    def one(self, name: str) -> str:
        values = self.headers.get(name.lower(), [])
        assert len(values) == 1, (name, values)
        return values[0]

    def get(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass
class Warc:
    records: list[Read] = field(default_factory=list)

    def of_type(self, *types: str) -> list[Read]:
        return [r for r in self.records if r.type in types]

    def by_uri(self, uri: str, *types: str) -> list[Read]:
        return [r for r in self.of_type(*types) if r.get("WARC-Target-URI") == uri]


def read_warc(source: Path | IO[bytes]) -> Warc:
    """Every record, each block and payload digest verified (AssertionError on a problem)."""
    out = Warc()
    with (open(source, "rb") if isinstance(source, Path) else _nullctx(source)) as stream:
        records = ArchiveIterator(stream, check_digests=True)
        for record in records:
            payload = record.content_stream().read()
            problems = list(record.digest_checker.problems)
            assert not problems, problems
            headers: dict[str, list[str]] = {}
            for name, value in record.rec_headers.headers:
                headers.setdefault(name.lower(), []).append(value)
            status = int(record.http_headers.get_statuscode()) \
                if record.http_headers is not None and record.rec_type != "request" else None
            out.records.append(Read(record.rec_type, headers, status, payload,
                                    records.get_record_offset()))
    return out


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _nullctx:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        return None


def iter_members(path: Path) -> Iterator[bytes]:
    """The raw gzip members of a per-record gzipped WARC (one per record)."""
    import zlib

    data = path.read_bytes()
    while data:
        z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        z.decompress(data)
        used = len(data) - len(z.unused_data)
        yield data[:used]
        data = z.unused_data
