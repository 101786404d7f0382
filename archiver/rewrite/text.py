"""The text engine: exact-token URL replacement, pure (text in, text out).

It never re-serialises HTML or YAML. It walks the text for URL tokens (``http://``,
``https://`` or ``//`` after a delimiter, up to whitespace, a quote, ``<``/``>``, an unbalanced
``)``/``]`` or an entity-encoded quote; trailing srcset commas dropped), normalises each token
exactly as the scanner does (``urls.normalise``: proxy unwrapped, entities decoded,
scheme-relative resolved) and replaces the whole token when its origin is a target. Every
written form of one origin (proxied ``src``, raw ``data-original``, ``&amp;``-escaped, ``//``,
quoted or bare front matter, srcset candidates) is therefore found without the scanner having
to remember where each was; and because a token is always taken whole, ``a_1024.jpg`` never
matches inside ``a_1024.jpg?x=1`` or a longer path.

Inside an ``<img>`` carrying ``data-gif-url``, the stills (``src``, ``data-original``, ...)
point at the archived GIF too: the blog's lazy loader shows those, not ``data-gif-url``.
Fenced markdown code blocks are left alone, as the scanner ignores them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archiver import urls
from archiver.settings import ScanSettings

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

    code = fences(text)
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
        if _inside(code, start):
            pos = _inside_end(code, start)
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


def fences(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the fenced markdown code blocks of ``text``."""
    if "```" not in text and "~~~" not in text:
        return []
    return [(m.start(), m.end()) for m in _FENCE.finditer(text)]


def line_and_column(text: str, pos: int) -> tuple[int, int]:
    """The 1-based line and column of ``pos``."""
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _origin_of(raw: str, targets: Mapping[str, str], settings: ScanSettings) -> str | None:
    """The origin of a written URL; of several readings (entities decoded as the scanner
    does for front matter and markdown, or as an HTML parser does, markdown escapes undone,
    a ``[[scan.links]]`` wrapper seen through), the first that is a target, else the first
    at all."""
    readings = [(raw, True), (raw, False)]
    if "\\" in raw:
        readings.append((_MD_ESCAPE.sub(r"\1", raw), True))
    first: str | None = None
    for value, entities in readings:
        normal = urls.normalise(value, settings, entities=entities)
        if isinstance(normal, urls.Normal):
            if normal.origin in targets:
                return normal.origin
            inner = urls.unwrap_link(normal.origin, settings.links)  # a link wrapper page
            if inner is not None:
                carried = urls.normalise(inner, settings, entities=False)
                if isinstance(carried, urls.Normal) and carried.origin in targets:
                    return carried.origin
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
