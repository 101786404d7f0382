"""The export drivers: which records go in, into which file, written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from archiver.export.select import EVERYTHING, Selection
from archiver.export.warc import Stats, WarcExport
from archiver.manifest import Manifest


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A temporary file beside ``path``, renamed onto it when the block succeeds and removed
    when it fails: an export never leaves a partial file under the name asked for."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def warcinfo_fields(manifest: Manifest, selection: Selection) -> dict[str, str]:
    fields = {"description": "Media preserved by archiver: each asset's stored bytes with the "
              "HTTP exchange that fetched them and the articles that cite it.",
              "isPartOf": manifest.store.url}
    if selection.articles:
        fields["archiver-articles"] = " ".join(selection.articles)
    if selection.since is not None:
        fields["archiver-since"] = selection.since.isoformat()
    if selection.until is not None:
        fields["archiver-until"] = selection.until.isoformat()
    return fields


def write_assets(export: WarcExport, manifest: Manifest, selection: Selection) -> None:
    """warcinfo, then every selected archived record."""
    export.warcinfo(warcinfo_fields(manifest, selection))
    export.add_all(record for record in manifest.iter_records() if selection.admits(record))


def export_warc(manifest: Manifest, path: str | os.PathLike[str],
                selection: Selection = EVERYTHING) -> Stats:
    """Write the selected assets to a WARC file (gzipped per record when it ends in .gz)."""
    name = Path(path).name
    gzip = name.endswith(".gz")
    with atomic_output(path) as out, \
            WarcExport(out, manifest.store, name, gzip=gzip, fd=out.fileno()) as export:
        write_assets(export, manifest, selection)
    return export.stats
