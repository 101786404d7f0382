"""CDXJ index lines (the format pywb and ReplayWeb.page read): ``<SURT key> <14-digit
timestamp> <JSON>``, sorted, one per response, resource and revisit record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import surt


@dataclass(frozen=True)
class Entry:
    """Where one record of the WARC is and what it holds."""

    url: str
    timestamp: str  # YYYYMMDDhhmmss
    mime: str
    status: int | None
    digest: str
    offset: int
    length: int
    filename: str

    def line(self) -> str:
        fields: dict[str, str] = {"url": self.url, "mime": self.mime}
        if self.status is not None:
            fields["status"] = str(self.status)
        fields.update(digest=self.digest, length=str(self.length), offset=str(self.offset),
                      filename=self.filename)
        return f"{key(self.url)} {self.timestamp} {json.dumps(fields, ensure_ascii=False)}\n"


def key(url: str) -> str:
    """The SURT form of ``url`` that replay tools look URLs up by; the URL itself when it
    cannot be parsed."""
    try:
        return str(surt.surt(url))
    except Exception:  # surt raises whatever its URL parser does on odd input
        return url


def write_index(entries: Iterable[Entry], out: IO[bytes]) -> int:
    """Write the entries' lines in sorted order; return how many."""
    lines = sorted(entry.line() for entry in entries)
    for line in lines:
        out.write(line.encode("utf-8"))
    return len(lines)
