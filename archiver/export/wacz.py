"""WACZ 1.1.1: the WARC, its CDXJ index, one page per article and a datapackage with hashes,
in one ZIP that ReplayWeb.page opens as it is.

Layout::

    archive/data.warc.gz        the WARC (stored, not deflated: replay reads it by range)
    indexes/index.cdx           the CDXJ index, sorted
    pages/pages.jsonl           one line per article page
    articles/manifests.jsonl    the article manifests, one per line (optional extra resource)
    datapackage.json            every file above with its size and sha256
    datapackage-digest.json     the sha256 of datapackage.json

The WARC is written straight into the ZIP while being hashed (by the WARC's writing thread),
never read back; the export holds no more payload in memory than for a WARC.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from typing import IO, Any

from archiver import __version__
from archiver.export.cdxj import write_index
from archiver.export.job import atomic_output, write_assets
from archiver.export.pages import PAGES_HEADER, exported_origins, page_html, page_line, page_url
from archiver.export.select import EVERYTHING, Selection
from archiver.export.warc import Stats, WarcExport
from archiver.manifest import Manifest, dumps

WACZ_VERSION = "1.1.1"
WARC_NAME = "data.warc.gz"
MANIFESTS = "articles/manifests.jsonl"


@dataclass
class WaczStats:
    """What the WACZ holds: the WARC's stats, pages and files."""

    warc: Stats
    pages: int = 0
    index_lines: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.warc.to_dict(), "pages": self.pages, "index_lines": self.index_lines,
                "files": len(self.files)}


class _Hashing:
    """A writable that hashes and counts what passes through."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


class _Zip:
    """The ZIP being written, and the datapackage entry of every file put in it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", allowZip64=True)
        self.resources: list[dict[str, Any]] = []

    @contextmanager
    def file(self, path: str, *, stored: bool = False) -> Iterator[_Hashing]:
        info = zipfile.ZipInfo(path, datetime.now(UTC).timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        with self.zip.open(info, "w", force_zip64=True) as raw:
            hashing = _Hashing(raw)
            yield hashing
        self.resources.append({"name": os.path.basename(path).lower(), "path": path,
                               "hash": "sha256:" + hashing.sha.hexdigest(),
                               "bytes": hashing.size})

    def put(self, path: str, data: bytes) -> None:
        with self.file(path) as out:
            out.write(data)

    def close(self) -> None:
        self.zip.close()


def export_wacz(manifest: Manifest, path: str | os.PathLike[str],
                selection: Selection = EVERYTHING, *, article_manifests: bool = True,
                title: str | None = None) -> WaczStats:
    """Write the selected assets, their index and the pages of the articles citing them to a
    WACZ file."""
    with atomic_output(path) as out:
        package = _Zip(out)
        try:
            stats = _fill(package, manifest, selection, article_manifests, out.fileno())
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            datapackage = {
                "profile": "data-package",
                "wacz_version": WACZ_VERSION,
                "title": title or f"archiver export of {manifest.store.url}",
                "created": created,
                "software": f"archiver {__version__} (warcio {version('warcio')})",
                "resources": package.resources,
            }
            body = json.dumps(datapackage, indent=2, ensure_ascii=False).encode("utf-8")
            stats.files = list(package.resources)
            package.zip.writestr(_info("datapackage.json"), body)
            digest = {"path": "datapackage.json",
                      "hash": "sha256:" + hashlib.sha256(body).hexdigest()}
            package.zip.writestr(_info("datapackage-digest.json"),
                                 json.dumps(digest, indent=2).encode("utf-8"))
        finally:
            package.close()
    return stats


def _info(path: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _fill(package: _Zip, manifest: Manifest, selection: Selection, article_manifests: bool,
          fd: int) -> WaczStats:
    pages: list[dict[str, Any]] = []
    docs: list[str] = []
    with package.file(f"archive/{WARC_NAME}", stored=True) as warc, \
            WarcExport(warc, manifest.store, WARC_NAME, index=True, fd=fd) as export:
        write_assets(export, manifest, selection)
        for doc in manifest.iter_articles():
            if not selection.admits_article(doc["article"]):
                continue
            media = exported_origins(doc, export.captured)
            if not media:
                continue
            when = max(export.captured[str(ref.get("asset"))]
                       for ref in doc.get("references") or ()
                       if isinstance(ref, dict) and ref.get("asset") in export.captured)
            body = page_html(doc, media)
            export.add_resource(page_url(doc["article"]), when, "text/html; charset=utf-8",
                                body, [("WARC-Archiver-Article", doc["article"])])
            pages.append(page_line(doc, when, len(body)))
            docs.append(doc["article"])
    stats = WaczStats(export.stats, pages=len(pages))
    with package.file("indexes/index.cdx") as index:
        stats.index_lines = write_index(export.entries or [], index)  # type: ignore[arg-type]
    lines = [PAGES_HEADER, *pages]
    package.put("pages/pages.jsonl",
                b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines))
    if article_manifests:  # read again: holding every article in memory does not scale
        wanted = set(docs)
        with package.file(MANIFESTS) as out:
            for doc in manifest.iter_articles():
                if doc["article"] in wanted:
                    out.write(dumps(doc) + b"\n")
    return stats

