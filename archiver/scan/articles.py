"""Finding articles (files, directories, stdin) and reading them into clean text.

Reading never raises for bad content: oversized, binary or undecodable input becomes a
warning on the article, and the rest of the run goes on. Only a path that does not exist is
an error, raised before anything is scanned so that a typo does not cost a long run.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from archiver.errors import ScanError
from archiver.settings import ScanSettings
from archiver.urls import escapes

STDIN = "-"
# Bytes inspected for the binary check: enough for any file header, cheap for every article.
SNIFF_BYTES = 8192
# Text has few control characters; more than this share among the sniffed bytes is binary.
_CONTROL_SHARE = 0.10
# Bytes deleted before counting control characters: everything printable, plus text controls.
_NOT_CONTROL = bytes(range(32, 256)) + b"\t\n\r\f\v\x1b"


@dataclass(frozen=True, slots=True)
class Source:
    """One article to scan: its id, its path ('-' for stdin)."""

    article: str
    path: str


@dataclass(frozen=True, slots=True)
class Text:
    """An article's text (BOM removed, newlines ``\\n``) or None when it was not readable."""

    text: str | None
    warnings: tuple[str, ...] = ()


def discover(paths: Sequence[str], settings: ScanSettings) -> list[Source]:
    """Every article under ``paths``: a file is its stem, a file found under a directory is its
    relative path without extension, stdin is ``stdin``. Hidden files and folders are left out.

    Raises ScanError for a path that does not exist, or a directory without articles (before
    any article is read).
    """
    missing = [p for p in paths if p != STDIN and not os.path.exists(p)]
    if missing:
        raise ScanError(f"no such file or directory: {', '.join(missing)}", paths=missing)
    extensions = {e.lower() for e in settings.extensions}
    sources: list[Source] = []
    for raw in paths:
        if raw == STDIN:
            sources.append(Source("stdin", STDIN))
            continue
        path = Path(raw)
        if not path.is_dir():
            sources.append(Source(path.stem or path.name, raw))
            continue
        found_here = sorted(_walk(path, extensions))
        if not found_here:
            # An empty or wrong directory is a mistake to say, not a run of nothing.
            raise ScanError(f"no articles in {raw} (looked for "
                            f"{', '.join(sorted(extensions))}, hidden files left out)",
                            paths=[raw])
        sources.extend(Source(article, found) for _, article, found in found_here)
    return sources


def _walk(root: Path, extensions: set[str]) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(sort key, article id, path) of each article under ``root``: in the order of their
    Paths, named as ``Path(folder) / name`` and ``relative_to(root).with_suffix("")`` would
    name them, with one Path per folder instead of three per file."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(folder)
        parts = base.relative_to(root).parts
        prefix = "".join(f"{part}/" for part in parts)
        here = "" if str(base) == "." else str(base).rstrip("/") + "/"
        for name in files:
            stem, extension = os.path.splitext(name)
            if not name.startswith(".") and extension.lower() in extensions:
                yield (*parts, name), prefix + stem, here + name


def read_file(path: str, settings: ScanSettings) -> Text:
    """The decoded text of a file, or a warning saying why it was not scanned."""
    return decode_read(read_bytes(path, settings.max_article_bytes), settings)


def read_bytes(path: str, cap: int) -> bytes | str:
    """A file's bytes (more than ``cap`` only when it grew while read: ``decode`` then says
    so), or a warning saying why it was not read. The read is sized by the file, not the cap:
    a read of cap + 1 bytes allocates that much for every article."""
    try:  # the descriptor itself: a file object and its buffer cost more than the read
        # Non-blocking: a FIFO named post.md would otherwise hold the open (and the run)
        # until something wrote to it; only regular files are read.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return "skipped: not a regular file"
            size = info.st_size
            if size > cap:
                return f"skipped: {size} bytes is over the {cap}-byte cap (scan.max_article_bytes)"
            data = _read_upto(fd, size + 1)
            if len(data) > size:  # it grew since: read on to the cap
                data += _read_upto(fd, cap + 1 - len(data))
        finally:
            os.close(fd)
    except OSError as exc:
        return f"skipped: cannot read: {exc.strerror or exc}"
    return data


def _read_upto(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``, fewer at its end (what a file object's read gives)."""
    data = os.read(fd, size)
    if len(data) in (0, size):
        return data
    parts = [data]
    left = size - len(data)
    while left > 0 and (chunk := os.read(fd, left)):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def decode_read(data: bytes | str, settings: ScanSettings) -> Text:
    """``decode`` of what ``read_bytes`` read, or the warning it gave."""
    return Text(None, (data,)) if isinstance(data, str) else decode(data, settings)


def read_stream(stream: TextIO, settings: ScanSettings) -> Text:
    """The text of standard input, under the same size cap (counted in characters)."""
    try:
        text = stream.read(settings.max_article_bytes + 1)
    except (OSError, UnicodeDecodeError) as exc:
        return Text(None, (f"skipped: cannot read standard input: {exc}",))
    if len(text) > settings.max_article_bytes:
        return Text(None, (f"skipped: over the {settings.max_article_bytes}-byte cap "
                           "(scan.max_article_bytes)",))
    if "\x00" in text[:SNIFF_BYTES]:
        return Text(None, ("skipped: binary content (NUL bytes)",))
    return Text(clean_text(text))


def decode(data: bytes, settings: ScanSettings) -> Text:
    """UTF-8 (or UTF-16 with a BOM) text; invalid UTF-8 bytes are kept escaped, with a
    warning."""
    if len(data) > settings.max_article_bytes:
        return Text(None, (f"skipped: over the {settings.max_article_bytes}-byte cap "
                           "(scan.max_article_bytes)",))
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Text(clean_text(data.decode("utf-16", errors="replace")), ("decoded as UTF-16",))
    reason = _binary(data[:SNIFF_BYTES])
    if reason:
        return Text(None, (f"skipped: binary content ({reason})",))
    try:
        return Text(clean_text(data.decode("utf-8-sig")))
    except UnicodeDecodeError as exc:
        # Each invalid byte is kept (as a private-use stand-in, see urls.escapes), so a URL
        # made of it is recorded with that byte percent-encoded, as the article meant it.
        text = data.decode("utf-8-sig", escapes.HANDLER)
        bad = escapes.count(text)
        return Text(clean_text(text), (f"invalid UTF-8 at byte {exc.start}: {bad} byte(s) kept as "
                                   "they are (percent-encoded in URLs)",))


def _binary(head: bytes) -> str | None:
    if b"\x00" in head:
        return "NUL bytes"
    if not head:
        return None
    controls = len(head.translate(None, _NOT_CONTROL))
    if controls / len(head) > _CONTROL_SHARE:
        return "control characters"
    return None


def clean_text(text: str) -> str:
    """``text`` without a leading BOM and with ``\n`` newlines (``\r\n`` and ``\r`` too)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text
