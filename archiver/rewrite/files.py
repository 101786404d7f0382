"""The rewrite driver: articles in, articles out (a mirror, in place, or a report).

Each file is decoded so that re-encoding gives back the very same bytes (encoding, BOM, line
endings, even invalid bytes for ``--out``), rewritten by the text engine, checked by scanning
the result again, and written atomically.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from archiver.errors import ConfigError
from archiver.manifest import Manifest
from archiver.models import asset_id
from archiver.rewrite.players import Swap, Video, restore, swap_players
from archiver.rewrite.targets import Missing, check_base_url, plan_targets, public_url
from archiver.rewrite.text import Change, Rewritten, rewrite_text
from archiver.scan import scan_text
from archiver.scan.articles import STDIN, Source, decode, discover, read_bytes
from archiver.settings import ScanSettings, Settings
from archiver.store.base import Store
from archiver.urls import escapes


@dataclass(frozen=True)
class Options:
    """How ``rewrite_paths`` runs: the base URL (None: setting, then ``store.public_url``),
    where to write (``out_dir`` mirror, ``in_place``), or ``dry_run``; and whether players
    become ``<video>`` elements (``video_tags``) or come back (``undo_video_tags``)."""

    base_url: str | None = None
    out_dir: str | None = None
    in_place: bool = False
    dry_run: bool = False
    video_tags: bool = False  # archived v.qq.com players become <video> elements
    undo_video_tags: bool = False  # put back the players an earlier --video-tags replaced


@dataclass(frozen=True)
class ArticleResult:
    """What happened to one article. ``refused`` says why it was not (fully) written."""

    article: str
    path: str
    changes: tuple[Change, ...] = ()
    missing: tuple[Missing, ...] = ()
    kept: tuple[str, ...] = ()
    done: int = 0  # references that already point at archived copies
    unrewritten: tuple[str, ...] = ()  # archived origins still referenced after the rewrite
    warnings: tuple[str, ...] = ()
    written: str | None = None
    refused: str | None = None


@dataclass(frozen=True)
class Raw:
    """An article's text decoded so that ``encode`` gives back the very same bytes."""

    text: str
    encoding: str
    bom: bytes
    valid: bool  # False: invalid bytes kept as surrogate escapes
    lossless: bool

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.encoding, "surrogateescape")

def decode_raw(data: bytes) -> Raw:
    """The text of an article's bytes, BOM and line endings kept as they are."""
    encoding, bom = "utf-8", b""
    for mark, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(mark):
            encoding, bom = name, mark
            break
    body = data[len(bom):]
    try:
        text, valid = body.decode(encoding), True
    except UnicodeDecodeError:
        text, valid = body.decode(encoding, "surrogateescape"), False
    raw = Raw(text, encoding, bom, valid, True)
    try:
        lossless = raw.encode(text) == data
    except UnicodeEncodeError:
        lossless = False
    return Raw(text, encoding, bom, valid, lossless)

def rewrite_paths(
    paths: Sequence[str], settings: Settings, store: Store, options: Options
) -> Iterator[ArticleResult]:
    """Rewrite every article under ``paths`` (see ``Options``), one result per article.

    Raises ConfigError for a bad base URL or output directory and ScanError for a missing
    path, before anything is written; per-file problems become ``refused`` results.
    """
    base = check_base_url(options.base_url or settings.store.public_base_url)
    url_for: Callable[[str], str] = store.public_url if base is None else (
        lambda key: public_url(base, key))
    sources = discover(paths, settings.scan)
    if any(source.path == STDIN for source in sources):
        raise ConfigError("rewrite reads and writes files; standard input is not supported")
    outputs = out_paths(paths, sources, Path(options.out_dir)) if options.out_dir else {}
    manifest = Manifest(store)
    rows = manifest.summaries()
    players = _Players(manifest, url_for)
    return (_rewrite_file(s, outputs.get(s.path), rows, players, settings.scan, options)
            for s in sources)


class _Players:
    """The archived videos of v.qq.com players (their records read once each), and the rewrite
    manifests that keep what was swapped."""

    def __init__(self, manifest: Manifest, url_for: Callable[[str], str]) -> None:
        self.manifest = manifest
        self.url_for = url_for
        self._videos: dict[str, Video | None] = {}

    def video(self, origin: str) -> Video | None:
        if origin not in self._videos:
            record = self.manifest.load(asset_id(origin))
            video = None
            if record is not None and record.status == "archived" and record.key:
                thumb = record.related.get("thumbnail")
                video = Video(self.url_for(record.key), self.url_for(thumb) if thumb else None)
            self._videos[origin] = video
        return self._videos[origin]

    def swap(self, text: str, kept: Sequence[str]) -> tuple[Rewritten, tuple[Swap, ...]]:
        wanted = {origin: video for origin in kept if (video := self.video(origin))}
        return swap_players(text, wanted)


def out_paths(paths: Sequence[str], sources: Sequence[Source], out_dir: Path) -> dict[str, Path]:
    """Where ``--out`` writes each source: the input tree mirrored under ``out_dir`` (a file
    given by name lands at its top). ConfigError when two sources would land on one file or
    the output directory lies inside an input directory."""
    out_real = Path(os.path.realpath(out_dir))
    roots = [Path(p) for p in paths if Path(p).is_dir()]
    for root in roots:
        if out_real.is_relative_to(os.path.realpath(root)):
            raise ConfigError(f"--out {out_dir} is inside the input directory {root}")
    mapping: dict[str, Path] = {}
    seen: dict[Path, str] = {}
    for source in sources:
        path = Path(source.path)
        top = next((r for r in roots if path.is_relative_to(r)), None)
        target = out_dir / (path.relative_to(top) if top is not None else path.name)
        if os.path.realpath(target) == os.path.realpath(source.path):
            raise ConfigError(f"--out would overwrite {source.path}; use --in-place for that")
        if target in seen and seen[target] != source.path:
            raise ConfigError(f"--out: {seen[target]} and {source.path} would both be {target}")
        seen[target] = source.path
        mapping[source.path] = target
    return mapping


class _Changed(Exception):
    """The file changed between our read and our rename."""


def write_atomic(path: Path, data: bytes, expect: tuple[int, int] | None = None) -> None:
    """Write ``data`` to a hidden temporary file next to ``path``, fsync, rename over it: a
    reader sees the old or the new file, never a part. The mode of an existing file is kept;
    ``expect`` (size, mtime_ns) guards against a concurrent edit (``_Changed``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".rewrite")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            status = os.stat(path)
            os.chmod(tmp, stat.S_IMODE(status.st_mode))
            if expect is not None and (status.st_size, status.st_mtime_ns) != expect:
                raise _Changed(str(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _rewrite_file(
    source: Source, out: Path | None, rows: Mapping[str, Mapping[str, Any]],
    players: _Players, settings: ScanSettings, options: Options,
) -> ArticleResult:
    article = ArticleResult(source.article, source.path)
    # Symlinked articles: rewrite the file the link points at, and keep the link.
    real = Path(os.path.realpath(source.path))
    try:
        before = os.stat(real)
    except OSError as exc:
        return replace(article, refused=f"cannot read: {exc.strerror or exc}")
    data = read_bytes(str(real), settings.max_article_bytes)  # a regular file within the cap
    if isinstance(data, str):
        return replace(article, refused=data.removeprefix("skipped: "))
    text = decode(data, settings)
    if text.text is None:
        written = _write(out, data, options) if out is not None else None
        return replace(article, warnings=text.warnings, written=written,
                       refused=text.warnings[0] if text.warnings else "not readable")
    scan = scan_text(text.text, source.article, settings, source.path)
    plan = plan_targets(scan, rows, players.url_for)
    raw = decode_raw(data)
    swaps: tuple[Swap, ...] = ()
    if options.undo_video_tags:  # only players come back; URLs stay as they are
        result = restore(raw.text, [Swap.from_dict(s)
                                    for s in players.manifest.load_swaps(source.article)])
        plan = replace(plan, urls={}, gifs={})
    elif options.video_tags and plan.kept:
        swapped, swaps = players.swap(raw.text, plan.kept)
        urls_done = rewrite_text(swapped.text, plan.urls, settings, plan.gifs)
        result = Rewritten(urls_done.text, tuple(sorted(
            swapped.changes + urls_done.changes, key=lambda c: (c.line, c.column))))
        plan = replace(plan, kept=tuple(o for o in plan.kept
                                        if o not in {s.origin for s in swaps}))
    else:
        result = rewrite_text(raw.text, plan.urls, settings, plan.gifs)
    check = result.text if raw.valid else raw.encode(result.text)[len(raw.bom):].decode(
        raw.encoding, escapes.HANDLER)
    left = tuple(r.origin for r in scan_text(check, source.article, settings).references
                 if r.origin in plan.urls)
    article = replace(article, changes=result.changes, missing=plan.missing, kept=plan.kept,
                      done=len(plan.done), unrewritten=left,
                      warnings=text.warnings + scan.warnings)
    refused = _refusal(raw, result, options)
    if refused or options.dry_run:
        if out is not None and not options.dry_run:
            article = replace(article, written=_write(out, data, options))
        return replace(article, refused=refused)
    try:
        if swaps:  # recorded before the file changes, so the swap can always be undone
            players.manifest.save_swaps(source.article, [swap.to_dict() for swap in swaps])
        if out is not None:
            new = raw.encode(result.text) if result.changes else data
            return replace(article, written=_write(out, new, options))
        if options.in_place and result.changes:
            write_atomic(real, raw.encode(result.text), (before.st_size, before.st_mtime_ns))
            return replace(article, written=source.path)
    except _Changed:
        return replace(article, refused="the file changed while it was being rewritten; "
                       "left as it is, run again")
    except OSError as exc:
        return replace(article, refused=f"cannot write: {exc.strerror or exc}")
    return article


def _refusal(raw: Raw, result: Rewritten, options: Options) -> str | None:
    if not result.changes:
        return None
    if not raw.lossless:
        return f"cannot decode and re-encode the bytes exactly ({raw.encoding}); not rewritten"
    if options.in_place and not raw.valid:
        return (f"invalid {raw.encoding.upper()} bytes; refusing to rewrite in place "
                "(use --out to write a copy)")
    return None


def _write(out: Path, data: bytes, options: Options) -> str | None:
    if options.dry_run:
        return None
    write_atomic(out, data)
    return str(out)
