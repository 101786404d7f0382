"""Point articles at the preserved copies: exact-token URL replacement, and the driver.

The core (``rewrite_text``) never re-serialises HTML or YAML. It walks the text for URL
tokens (``http://``, ``https://`` or ``//`` after a delimiter, up to whitespace, a quote,
``<``/``>``, an unbalanced ``)``/``]`` or an entity-encoded quote; trailing srcset commas
dropped), normalises each token exactly as the scanner does (``urls.normalise``: proxy
unwrapped, entities decoded, scheme-relative resolved) and replaces the whole token when its
origin is a target. Every written form of one origin (proxied ``src``, raw ``data-original``,
``&amp;``-escaped, ``//``, quoted or bare front matter, srcset candidates) is therefore found
without the scanner having to remember where each was; and because a token is always taken
whole, ``a_1024.jpg`` never matches inside ``a_1024.jpg?x=1`` or a longer path.

Decisions:
- Inside an ``<img>`` carrying ``data-gif-url``, the stills (``src``, ``data-original``, ...)
  point at the archived GIF too: the blog's lazy loader shows those, not ``data-gif-url``. A
  still archived in its own right (e.g. also a ``headimg``) keeps its own copy elsewhere.
- v.qq.com players (iframes, ``div.iframe_video`` ids) are left alone: an iframe needs a
  player page, not a file. Their archived records are reported as ``kept``.
- Fenced markdown code blocks are left alone, as the scanner ignores them.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from archiver import urls
from archiver.errors import ConfigError
from archiver.manifest import Manifest
from archiver.models import ArticleScan, asset_id
from archiver.scan import scan_text
from archiver.scan.articles import STDIN, Source, decode, discover
from archiver.settings import ScanSettings, Settings
from archiver.store.base import Store

_START = re.compile(r"""(?<![^\s"'<>=(\[,;`|])(?:https?:)?//""", re.IGNORECASE)
# An entity-encoded quote or angle bracket ends a URL (style="url(&quot;...&quot;)").
_ENTITY_STOP = re.compile(
    r"&(?:quot|apos|lt|gt|#0*(?:34|39|60|62)|#x0*(?:22|27|3c|3e));?", re.IGNORECASE)
_STOP = frozenset("\"'<>`\ufeff")
_GIF_IMG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_GIF_ATTR = re.compile(r"""\sdata-gif-url\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""",
                       re.IGNORECASE)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[ \t]*\r?$|\Z)",
                    re.MULTILINE | re.DOTALL)
_FRONT = re.compile(r"\A\ufeff?\s*?(?:^|\n)(-{3,}|;{3,})[ \t]*\r?\n(?:.*?\n)??(?:-{3,}|;{3,})"
                    r"[ \t]*\r?$", re.DOTALL | re.MULTILINE)
_TAG_OPEN = re.compile(r"<([a-zA-Z][\w:-]*)")
_ATTR_NAME = re.compile(r"""([\w:.-]+)\s*=\s*["']?""")
_KEY_LINE = re.compile(r"([A-Za-z_][\w.-]*)[ \t]*:")
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


@dataclass(frozen=True)
class Change:
    """One replaced URL: where it was (1-based line/column, a best-effort label), as written
    before and after, and the origin it stands for."""

    line: int
    column: int
    where: str
    old: str
    new: str
    origin: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "where": self.where,
                "from": self.old, "to": self.new, "origin": self.origin}


@dataclass(frozen=True)
class Rewritten:
    text: str
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class Missing:
    """A reference whose asset is not archived: left as written."""

    origin: str
    url: str
    kind: str
    status: str  # failed | skipped | pending (no record)
    error: str | None = None


@dataclass(frozen=True)
class Targets:
    """What one article's references resolve to (see ``plan_targets``)."""

    urls: dict[str, str] = field(default_factory=dict)  # origin -> archived copy's URL
    gifs: dict[str, frozenset[str]] = field(default_factory=dict)  # GIF origin -> stills
    missing: tuple[Missing, ...] = ()
    kept: tuple[str, ...] = ()  # archived video players left as they are
    done: tuple[str, ...] = ()  # references that already are archived copies


def rewrite_text(
    text: str, targets: Mapping[str, str], settings: ScanSettings,
    gifs: Mapping[str, frozenset[str]] | None = None,
) -> Rewritten:
    """``text`` with every URL token whose origin is a key of ``targets`` replaced by its
    value; everything else byte-for-byte as it was. ``gifs`` (GIF origin -> still origins):
    inside an ``<img>`` whose ``data-gif-url`` is a target, the stills get the GIF's URL."""
    if not targets or "//" not in text:
        return Rewritten(text)
    memo: dict[str, str | None] = {}

    def resolve(raw: str) -> str | None:
        if raw not in memo:
            memo[raw] = _origin_of(raw, targets, settings)
        return memo[raw]

    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)] if (
        "```" in text or "~~~" in text) else []
    gif_tags = _gif_tags(text, targets, gifs or {}, resolve)
    gif_starts = [start for start, _, _, _ in gif_tags]
    front_end = _front_end(text)
    out: list[str] = []
    changes: list[Change] = []
    done = 0
    line, line_start = 1, 0
    pos = 0
    while True:
        match = _START.search(text, pos)
        if match is None:
            break
        start = match.start()
        if _inside(fences, start):
            pos = _inside_end(fences, start)
            continue
        end = _token_end(text, start)
        origin, end = _whole_value(text, start, end, targets, resolve)
        new: str | None = targets.get(origin) if origin else None
        slot = bisect.bisect_right(gif_starts, start) - 1
        if slot >= 0 and start < gif_tags[slot][1] and origin is not None:
            _, _, gif_url, stills = gif_tags[slot]
            if origin in stills:
                new = gif_url  # the GIF wins inside its own <img> (see module docstring)
        old = text[start:end]
        if new is not None and old != new:
            line += text.count("\n", line_start, start)
            line_start = text.rfind("\n", 0, start) + 1
            changes.append(Change(line, start - line_start + 1,
                                  _where(text, start, front_end), old, new, origin or ""))
            out.append(text[done:start])
            out.append(new)
            done = end
        pos = max(end, start + 2)
    if not changes:
        return Rewritten(text)
    out.append(text[done:])
    return Rewritten("".join(out), tuple(changes))


def _origin_of(raw: str, targets: Mapping[str, str], settings: ScanSettings) -> str | None:
    """The origin of a written URL; of several readings (entities decoded as the scanner
    does for front matter and markdown, or as an HTML parser does, markdown escapes undone),
    the first that is a target, else the first at all."""
    readings = [(raw, True), (raw, False)]
    if "\\" in raw:
        readings.append((_MD_ESCAPE.sub(r"\1", raw), True))
    first: str | None = None
    for value, entities in readings:
        normal = urls.normalise(value, settings, entities=entities)
        if isinstance(normal, urls.Normal):
            if normal.origin in targets:
                return normal.origin
            first = first or normal.origin
        if "&" not in raw and "\\" not in raw:
            break
    return first


def _token_end(text: str, pos: int) -> int:
    start, parens, brackets, n = pos, 0, 0, len(text)
    while pos < n:
        c = text[pos]
        if c in _STOP or c.isspace() or (c == "&" and _ENTITY_STOP.match(text, pos)):
            break
        if c == "(":
            parens += 1
        elif c == ")":
            if not parens:
                break
            parens -= 1
        elif c == "[":
            brackets += 1
        elif c == "]":
            if not brackets:
                break
            brackets -= 1
        pos += 1
    while pos > start and text[pos - 1] == ",":  # a srcset candidate ends with a comma
        pos -= 1
    return pos


def _whole_value(
    text: str, start: int, end: int, targets: Mapping[str, str],
    resolve: Callable[[str], str | None],
) -> tuple[str | None, int]:
    """A quoted value with spaces inside (``src="a b.jpg"``) is one URL when it normalises to
    a target as a whole; otherwise the token alone counts."""
    quote_char = text[start - 1] if start else ""
    if quote_char in ("'", '"') and end < len(text) and text[end].isspace():
        close = text.find(quote_char, end, end + 2048)
        newline = text.find("\n", end, close)
        if close > 0 and newline < 0:
            value = text[start:close].rstrip()
            origin = resolve(value)
            if origin is not None and origin in targets:
                return origin, start + len(value)
    return resolve(text[start:end]), end


def _gif_tags(
    text: str, targets: Mapping[str, str], gifs: Mapping[str, frozenset[str]],
    resolve: Callable[[str], str | None],
) -> list[tuple[int, int, str, frozenset[str]]]:
    """(start, end, archived GIF URL, still origins) of each ``<img data-gif-url>`` whose GIF
    is a target, in document order."""
    if not gifs or "data-gif-url" not in text.lower():
        return []
    found = []
    for tag in _GIF_IMG.finditer(text):
        attr = _GIF_ATTR.search(tag.group(0))
        if attr is None:
            continue
        origin = resolve(next(g for g in attr.groups() if g is not None).strip())
        if origin is not None and origin in targets and origin in gifs:
            found.append((tag.start(), tag.end(), targets[origin], gifs[origin]))
    return found


def _inside(spans: list[tuple[int, int]], pos: int) -> bool:
    return any(a <= pos < b for a, b in spans)


def _inside_end(spans: list[tuple[int, int]], pos: int) -> int:
    return next(b for a, b in spans if a <= pos < b)


def _front_end(text: str) -> int:
    match = _FRONT.match(text)
    return match.end() if match else 0


def _where(text: str, pos: int, front_end: int) -> str:
    """A label like the scanner's ``where``: ``front_matter.headimg``, ``img[src]``,
    ``markdown``, or ``text``. Best effort (it reads backwards from the token)."""
    line_start = text.rfind("\n", 0, pos) + 1
    if pos < front_end:
        # The nearest top-level "key:" line at or above the token names the field.
        start = line_start
        while True:
            key = _KEY_LINE.match(text, start)
            if key and key.end() <= pos:
                return f"front_matter.{key.group(1)}"
            if start == 0:
                return "front_matter"
            start = text.rfind("\n", 0, start - 1) + 1
    lt, gt = text.rfind("<", 0, pos), text.rfind(">", 0, pos)
    if lt > gt and lt < pos - 1:  # "<" right before the URL is markdown's <destination>
        tag = _TAG_OPEN.match(text, lt)
        if tag:
            names = _ATTR_NAME.findall(text, lt, pos)
            attr = names[-1].lower() if names else "?"
            return f"{tag.group(1).lower()}[{attr}]"
    if text[max(0, pos - 2):pos] == "](" or text[max(0, pos - 1):pos] == "<" or \
            re.match(r"[ \t]{0,3}\[[^\]\n]+\]:", text[line_start:pos]):
        return "markdown"
    return "text"


def public_url(base_url: str, key: str) -> str:
    """``<base_url>/<key>``, the key percent-encoded as a URL path."""
    return f"{base_url.rstrip('/')}/{quote(key, safe='/~')}"


def plan_targets(
    scan: ArticleScan, rows: Mapping[str, Mapping[str, Any]], url_for: Callable[[str], str],
) -> Targets:
    """Sort an article's references by their record (``rows``: ``Manifest.summaries()``):
    archived ones become targets (``url_for(key)``), v.qq.com players are kept, references
    that are themselves archived copies (their path ends with an archived key) are done, the
    rest are missing."""
    by_name = {str(row["key"]).rsplit("/", 1)[-1]: str(row["key"])
               for row in rows.values() if row.get("status") == "archived" and row.get("key")}
    targets: dict[str, str] = {}
    gifs: dict[str, frozenset[str]] = {}
    missing: list[Missing] = []
    kept: list[str] = []
    done: list[str] = []
    for ref in scan.references:
        path = ref.origin.split("?", 1)[0]
        key = by_name.get(path.rsplit("/", 1)[-1])
        if key is not None and path.endswith("/" + key):
            done.append(ref.origin)
            continue
        row = rows.get(asset_id(ref.origin))
        if row is None or row.get("status") != "archived" or not row.get("key"):
            status = str(row.get("status")) if row else "pending"
            error = row.get("error") if row else None
            missing.append(Missing(ref.origin, ref.url, ref.kind, status,
                                   str(error) if error else None))
        elif urls.canonical_video(ref.origin) is not None:
            kept.append(ref.origin)
        else:
            targets[ref.origin] = url_for(str(row["key"]))
            if ref.kind == "gif" and ref.alternates:
                gifs[ref.origin] = frozenset(ref.alternates)
    return Targets(targets, gifs, tuple(missing), tuple(kept), tuple(done))


# The driver: files in, files out (or a report of what would change).


@dataclass(frozen=True)
class Options:
    """How ``rewrite_paths`` runs: the base URL (None: setting, then ``store.public_url``),
    where to write (``out_dir`` mirror, ``in_place``), or ``dry_run``."""

    base_url: str | None = None
    out_dir: str | None = None
    in_place: bool = False
    dry_run: bool = False


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


def check_base_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL or a site path (``/archive``), else
    ConfigError."""
    if url is None:
        return None
    parts = urlsplit(url)
    site_path = url.startswith("/") and not url.startswith("//")
    if not site_path and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError(f"base URL must be http(s)://host/... or /path: {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"base URL must not carry a query or fragment: {url!r}")
    return url


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
    rows = Manifest(store).summaries()
    return (_rewrite_file(s, outputs.get(s.path), rows, url_for, settings.scan, options)
            for s in sources)


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
    url_for: Callable[[str], str], settings: ScanSettings, options: Options,
) -> ArticleResult:
    article = ArticleResult(source.article, source.path)
    # Symlinked articles: rewrite the file the link points at, and keep the link.
    real = Path(os.path.realpath(source.path))
    try:
        before = os.stat(real)
        data = real.read_bytes()
    except OSError as exc:
        return replace(article, refused=f"cannot read: {exc.strerror or exc}")
    text = decode(data, settings)
    if text.text is None:
        written = _write(out, data, options) if out is not None else None
        return replace(article, warnings=text.warnings, written=written,
                       refused=text.warnings[0] if text.warnings else "not readable")
    scan = scan_text(text.text, source.article, settings, source.path)
    plan = plan_targets(scan, rows, url_for)
    raw = decode_raw(data)
    result = rewrite_text(raw.text, plan.urls, settings, plan.gifs)
    check = result.text if raw.valid else raw.encode(result.text)[len(raw.bom):].decode(
        raw.encoding, "replace")
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
