"""The scan cache: what scanning each article gave, so that a re-run reads and hashes every
article but parses only those that changed (issue 11, item 4).

An entry's key is sha256 of the cache's fingerprint, the article's id and the article's bytes;
the fingerprint covers the scanner's version (``archiver.scan.SCANNER_VERSION``), a digest of
the scanner's source files and every scan setting that can change its output. The value is
the scan without its article id and path (the key holds the id, the path is the one read now).

Entries live in one SQLite file, ``scan-cache.sqlite3`` in ``scan.cache_dir``. Safety:

- SQLite commits a run's entries in one transaction: a crash leaves the previous state.
- Every value carries its CRC-32, checked when read; a value that fails the check or does not
  decode is a miss, scanned again and written over. A file that is not a readable database
  (or of another layout) is removed and rebuilt.
- The bytes a miss is scanned from are the bytes its key is made of (read once, by the
  process that scans them): an article changed mid-run cannot be cached under its old key.
- The cache is an optimisation only: when it cannot be opened or written (a read-only or full
  disk, a lock held too long) the run scans without it and says so in the log.

Bounded: at most ``scan.cache_entries`` entries; an entry's last use is stamped by the day,
and the least recently used go first when a run leaves more.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import archiver
from archiver import urls
from archiver.models import ArticleScan
from archiver.plan.cachevalue import decode_scan, encode
from archiver.scan import SCANNER_VERSION
from archiver.scan.articles import STDIN, Source, decode_read, discover, read_bytes
from archiver.settings import ScanSettings

log = logging.getLogger(__name__)

FILE_NAME = "scan-cache.sqlite3"
LAYOUT = "1"  # of the tables below
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scans (key BLOB PRIMARY KEY, crc INTEGER NOT NULL,"
    " used INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS scans_used ON scans (used)",
)
_LOOKUP = 500  # keys per SELECT
_WRITE_EVERY = 2000  # new entries per transaction
# Placeholders only: the statement is made of constants, the keys are bound.
_SELECT = ("SELECT key, crc, used, value FROM scans WHERE key IN ("  # noqa: S608
           + ",".join("?" * _LOOKUP) + ")")
# What the scan's output depends on besides the settings: the scanner and what it calls.
_SOURCES = ("scan", "urls", "models.py", "dates.py", "settings_rules.py")
# Settings that change how the scan runs, not what it finds.
_NOT_OUTPUT = {"workers", "cache", "cache_dir", "cache_entries"}


@dataclass
class CacheStats:
    """What the cache did in one scan: articles found in it, parsed, written into it."""

    hits: int = 0
    parsed: int = 0
    written: int = 0
    problems: list[str] = field(default_factory=list)
    # (article, path) -> the key of the bytes its scan was made from (what the scan is a
    # function of, with the path): the article manifests skip rebuilding unchanged ones by it.
    # An article not read whole, or scanned twice from different bytes, gets b"" (none).
    keys: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def keep(self, scan: ArticleScan, key: bytes | None) -> None:
        name, new = (scan.article, scan.path), key or b""
        self.keys[name] = new if self.keys.get(name, new) == new else b""


def cache_path(settings: ScanSettings) -> Path:
    """The cache's file: ``scan.cache_dir``, else $XDG_CACHE_HOME/archiver, else
    ~/.cache/archiver."""
    if settings.cache_dir:
        folder = Path(settings.cache_dir).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        folder = Path(base) / "archiver"
    return folder / FILE_NAME


@functools.cache
def _code_digest() -> str:
    digest = hashlib.sha256(f"scanner {SCANNER_VERSION}\0".encode())
    root = Path(archiver.__file__).parent
    for name in _SOURCES:
        target = root / name
        for path in sorted(target.glob("*.py")) if target.is_dir() else [target]:
            try:
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
            except OSError:
                digest.update(path.name.encode() + b"\0unreadable\0")
    return digest.hexdigest()


def fingerprint(settings: ScanSettings) -> bytes:
    """What every key of this scan starts with: scanner version and code, output settings."""
    output = settings.model_dump(mode="json", exclude=_NOT_OUTPUT)
    output["archive_bases"] = list(settings.archive_bases)
    text = json.dumps([_code_digest(), output], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def whole(read: bytes | str, cap: int) -> bytes | None:
    """What ``read_bytes`` read when it is the whole article within ``cap``, else None (the
    scanner then says why, and nothing is cached)."""
    return read if isinstance(read, bytes) and len(read) <= cap else None


def article_key(base: hashlib._Hash, article: str, data: bytes) -> bytes:
    digest = base.copy()
    digest.update(article.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(data)
    return digest.digest()


Parsed = tuple[ArticleScan, bytes | None, bytes | None]  # scan, key, value to cache


# The scanner is imported when a miss needs it (see archiver/scan/__init__.py): a run whose
# articles the cache holds parses none and does not load bs4, lxml and YAML.
def scan_text(text: str, article: str, settings: ScanSettings, path: str = "") -> ArticleScan:
    """``archiver.scan.scan_text``."""
    from archiver.scan.core import scan_text as scan

    return scan(text, article, settings, path)


def scan_paths(paths: Sequence[str], settings: ScanSettings) -> Iterator[ArticleScan]:
    """``archiver.scan.scan_paths``."""
    from archiver.scan.core import scan_paths as scan

    return scan(paths, settings)


def parse_source(source: Source, settings: ScanSettings, prefix: bytes) -> Parsed:
    """Read, hash and scan one article file, as the scanner would; with the key and value to
    cache, both None when the file was not read whole."""
    read = read_bytes(source.path, settings.max_article_bytes)
    data = whole(read, settings.max_article_bytes)
    text = decode_read(read, settings)
    if text.text is None:
        scan = ArticleScan(article=source.article, path=source.path, warnings=text.warnings)
    else:
        scan = scan_text(text.text, source.article, settings, source.path)
        if text.warnings:
            scan = replace(scan, warnings=text.warnings + scan.warnings)
    if data is None:
        return scan, None, None
    return scan, article_key(hashlib.sha256(prefix), source.article, data), encode(scan)


def _parse_chunk(sources: Sequence[Source], settings: ScanSettings,
                 prefix: bytes) -> list[Parsed]:
    return [parse_source(source, settings, prefix) for source in sources]


class ScanCache:
    """The cache file, open. Every method is safe to call after a failure (it then does
    nothing): a broken cache costs parsing, never a run."""

    def __init__(self, path: Path, max_entries: int, stats: CacheStats) -> None:
        self.path = path
        self.max_entries = max_entries
        self.stats = stats
        self.conn: sqlite3.Connection | None = None
        try:
            self.conn = self._open()
        except (sqlite3.Error, OSError) as exc:
            self._problem(f"not used: {exc}")

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    conn.execute(statement)
                row = conn.execute("SELECT value FROM meta WHERE name='layout'").fetchone()
                if row is None:
                    conn.execute("INSERT OR IGNORE INTO meta VALUES ('layout', ?)", (LAYOUT,))
                elif row[0] != LAYOUT:
                    raise sqlite3.DatabaseError(f"layout {row[0]!r}, not {LAYOUT!r}")
                return conn
            except sqlite3.DatabaseError as exc:
                conn.close()
                if attempt == 2 or isinstance(exc, sqlite3.OperationalError):
                    raise  # locked, read-only...: not ours to remove
                self._problem(f"unreadable ({exc}): rebuilt")
                self._remove()
        raise AssertionError("unreachable")

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _problem(self, text: str) -> None:
        self.stats.problems.append(text)
        log.warning("scan cache %s: %s", self.path, text)

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """key -> (value, day last used) of the keys held whose value passes its check."""
        found: dict[bytes, tuple[bytes, int]] = {}
        if self.conn is None:
            return found
        try:
            (held,) = self.conn.execute("SELECT count(*) FROM scans").fetchone()
            if len(keys) * 2 >= held:  # most of the cache wanted: one pass over it is cheaper
                wanted = set(keys)
                for key, crc, used, value in self.conn.execute(
                        "SELECT key, crc, used, value FROM scans"):
                    if key in wanted and isinstance(value, bytes) and zlib.crc32(value) == crc:
                        found[key] = (value, used)
                return found
            for i in range(0, len(keys), _LOOKUP):
                batch = list(keys[i:i + _LOOKUP])
                batch += batch[:1] * (_LOOKUP - len(batch))  # one statement for every batch
                for key, crc, used, value in self.conn.execute(_SELECT, batch):
                    if isinstance(value, bytes) and zlib.crc32(value) == crc:
                        found[key] = (value, used)
        except sqlite3.Error as exc:
            self._problem(f"unreadable ({exc}): rebuilt")
            self._reset()
            return {}
        return found

    def _reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        try:
            self._remove()
            self.conn = self._open()
        except (sqlite3.Error, OSError) as exc:
            self._problem(f"not used: {exc}")

    def store(self, entries: Sequence[tuple[bytes, bytes]], touched: Sequence[bytes]) -> None:
        """Write ``entries`` (key, value), stamp ``touched`` keys as used today, then drop the
        least recently used entries over the bound; all in one transaction."""
        if self.conn is None or not (entries or touched):
            return
        today = today_stamp()
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(
                    "INSERT OR REPLACE INTO scans VALUES (?, ?, ?, ?)",
                    [(key, zlib.crc32(value), today, value) for key, value in entries])
                self.conn.executemany("UPDATE scans SET used = ? WHERE key = ?",
                                      [(today, key) for key in touched])
                if entries:
                    self._evict()
            self.stats.written += len(entries)
        except sqlite3.Error as exc:
            self._problem(f"not written: {exc}")

    def _evict(self) -> None:
        assert self.conn is not None
        (count,) = self.conn.execute("SELECT count(*) FROM scans").fetchone()
        if count > self.max_entries:
            self.conn.execute("DELETE FROM scans WHERE key IN (SELECT key FROM scans "
                              "ORDER BY used LIMIT ?)", (count - self.max_entries,))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def today_stamp() -> int:
    return int(time.time() // 86400)


def scan_cached(paths: Sequence[str], settings: ScanSettings,
                stats: CacheStats | None = None) -> Iterator[ArticleScan]:
    """``scan_paths(paths, settings)``, the same scans in the same order, through the scan
    cache: every article is read and hashed, only those the cache does not hold are parsed
    (by ``settings.workers`` processes when there are many). Raises as ``scan_paths`` does,
    before anything is scanned. Without the cache (``scan.cache`` false, standard input among
    the paths) it is ``scan_paths``."""
    if not settings.cache or settings.cache_entries == 0 or STDIN in paths:
        return scan_paths(paths, settings)
    urls.check_links(settings.links)
    sources = discover(paths, settings)
    stats = stats if stats is not None else CacheStats()
    cache = ScanCache(cache_path(settings), settings.cache_entries, stats)
    try:
        return _Run(sources, settings, cache, stats).scans()
    except BaseException:
        cache.close()
        raise


class _Run:
    """One scan through the cache. Hashing and the lookup happen here, the parse of the misses
    is started (in forked processes, before the caller starts threads); ``scans`` yields."""

    def __init__(self, sources: Sequence[Source], settings: ScanSettings, cache: ScanCache,
                 stats: CacheStats) -> None:
        self.sources, self.settings, self.cache, self.stats = sources, settings, cache, stats
        self.prefix = fingerprint(settings)
        base = hashlib.sha256(self.prefix)
        cap = settings.max_article_bytes
        keys: list[bytes | None] = []
        for source in sources:
            data = whole(read_bytes(source.path, cap), cap)
            keys.append(None if data is None else article_key(base, source.article, data))
        self.keys = keys
        self.found = cache.lookup([k for k in keys if k is not None])
        self.held = set(self.found)
        self.misses = [s for s, k in zip(sources, keys, strict=True) if k not in self.held]
        self.parsed = self._parse(self.misses)

    def _parse(self, misses: Sequence[Source]) -> Iterator[Parsed]:
        if not misses:  # every article in the cache: the scanner is not even imported
            return iter(())
        # Imported before any fork, so the workers inherit the scanner instead of each
        # importing it.
        from archiver.scan.core import CHUNK, FORK, PARALLEL_MIN_FILES, pooled_results

        workers = self.settings.workers or os.cpu_count() or 1
        if workers == 1 or len(misses) < PARALLEL_MIN_FILES or not FORK:
            return (parse_source(s, self.settings, self.prefix) for s in misses)
        import multiprocessing as mp  # loaded only by a scan large enough for processes
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
        try:
            futures = [pool.submit(_parse_chunk, misses[i:i + CHUNK], self.settings,
                                   self.prefix) for i in range(0, len(misses), CHUNK)]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
        return pooled_results(pool, futures)

    def scans(self) -> Iterator[ArticleScan]:
        entries: list[tuple[bytes, bytes]] = []
        touched: list[bytes] = []
        shared: dict[Any, Any] = {}  # values the references repeat (``decode_scan``)
        today = today_stamp()
        try:
            for source, key in zip(self.sources, self.keys, strict=True):
                if key is None or key not in self.held:
                    parsed = next(self.parsed)
                else:
                    held = self.found.pop(key, None)  # freed as used
                    scan = decode_scan(held[0], source.article, source.path, shared) \
                        if held else None
                    if scan is not None and held is not None:
                        self.stats.hits += 1
                        self.stats.keep(scan, key)
                        if held[1] != today:
                            touched.append(key)
                        yield scan
                        continue
                    # It passed its CRC but does not decode, or the article is named twice:
                    # parsed here.
                    parsed = parse_source(source, self.settings, self.prefix)
                self.stats.parsed += 1
                self.stats.keep(parsed[0], parsed[1])
                if parsed[1] is not None and parsed[2] is not None:
                    entries.append((parsed[1], parsed[2]))
                    if len(entries) >= _WRITE_EVERY:  # a first run does not hold them all
                        self.cache.store(entries, ())
                        entries = []
                yield parsed[0]
            self.cache.store(entries, touched)
        finally:
            self.cache.close()
