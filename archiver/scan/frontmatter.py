"""YAML front matter: split it from the body, parse it (with a line fallback), find images."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from archiver.scan.collect import Context, Found

# libyaml is ~10x faster; the scanner runs over tens of thousands of articles.
_Loader: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Hexo allows blank lines before the opening fence; the real posts start with one. "---" fences
# YAML, ";;;" JSON (Hexo's), "+++" TOML (Hugo's, in archives moved from it).
_OPEN = re.compile(r"\A\s*?(?:^|\n)(-{3,}|;{3,}|\+{3,})[ \t]*\n")
_CLOSE = {fence: re.compile(rf"^{re.escape(fence)}{{3,}}[ \t]*$", re.MULTILINE)
          for fence in "-;+"}
# Hexo also reads front matter without its opening fence: the lines before the first fence line.
_FENCE_LINE = re.compile(r"^(-{3,}|;{3,})[ \t]*$", re.MULTILINE)
_FIRST_KEY = re.compile(r"[A-Za-z_][\w.-]*[ \t]*:(?:[ \t]|$)|\"[^\"\n]*\"[ \t]*:")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$")
_ITEM_LINE = re.compile(r"^[ \t]*-[ \t]+(.*?)[ \t]*$")

# Flat front matter (``key: value`` lines, the value plain or in single quotes, ``- item``
# lists under a key) is read without the YAML parser, which cost as much as the rest of an
# article's scan (a timestamp is made by YAML's own constructor); what YAML would read
# otherwise goes to YAML (flow collections, double quotes, anchors, tags, comments, block or
# multi-line scalars, tabs, numbers, days no calendar has, and any character YAML refuses or
# reads as a line break). tests/test_scan_fast.py checks that both read every flat front
# matter alike. _UNSAFE is every character outside "\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff
# \ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff" (what YAML takes), written as the ranges
# themselves: the negated class took 4 ms to compile at every start of a scan.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_FLAT_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?: +(.*))?")
_FLAT_ITEM = re.compile(r"( *)- +(.*)")
_QUOTED = re.compile(r"'([^']*)'")
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`\\")
# The implicit resolvers YAML tries on a plain scalar, by its first character, in its order.
_ANY = tuple(_Loader.yaml_implicit_resolvers.get(None, []))  # those for any character
_RESOLVERS = {first: (*resolvers, *_ANY)
              for first, resolvers in _Loader.yaml_implicit_resolvers.items() if first is not None}
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONSTRUCTOR = yaml.constructor.SafeConstructor()  # the constructor of every SafeLoader
_NOT_FLAT = object()
# Keys and values come back article after article (author, categories, "false"): each plain
# or quoted scalar is resolved once. Bounded: long values are not kept, a full memo restarts.
_SCALARS: dict[str, Any] = {}
_MEMO_SCALARS = 4096
_MEMO_SCALAR_CHARS = 200


@dataclass(frozen=True, slots=True)
class Split:
    front: str | None  # the front matter text, without its fences; None when absent
    body: str
    warnings: tuple[str, ...] = ()
    fence: str = "-"  # "-" YAML, ";" JSON, "+" TOML


def split(text: str) -> Split:
    """Separate the front matter from the body (text already BOM-free with ``\\n`` newlines)."""
    opening = _OPEN.match(text)
    if opening is None:
        return _unopened(text)
    start = opening.end()
    fence = opening.group(1)[0]
    match = _CLOSE[fence].search(text, start)
    if match is None:
        return Split(None, text, ("front matter is not closed; scanned as body",))
    return Split(text[start:match.start()], text[match.end():], (), fence)


def _unopened(text: str) -> Split:
    """Hexo's front matter with no opening fence (``title: x`` ... ``---``, then the body):
    taken only when every line before the first fence line is a ``key: value`` line (a
    ``"key":`` member for JSON), a list item or an indented continuation, so that a post
    opening with a rule keeps its text. The body is then the whole text: what Hexo would take
    for front matter may be a post's own first line (``Note: <img ...>``), and a reference is
    better archived twice over than lost."""
    end = text.find("\n")
    if end < 0 or _FIRST_KEY.match(text, 0, end) is None:
        return Split(None, text)
    match = _FENCE_LINE.search(text)
    if match is None:
        return Split(None, text)
    front = text[:match.start()]
    for line in front.split("\n"):
        if line and line[0] not in " \t-" and _FIRST_KEY.match(line) is None:
            return Split(None, text)
    return Split(front, text, (), match.group(1)[0])


def parse(front: str, fence: str = "-") -> tuple[dict[str, Any], tuple[str, ...]]:
    """The front matter as a mapping: YAML, or ``key: value`` lines when YAML fails; JSON
    (Hexo's ";;;": the members without their braces, or an object) or TOML ("+++") by their
    fences, read as YAML then ``key: value`` lines when they are not valid."""
    if fence != "-":
        data = _json_or_toml(front, fence)
        if data is not None:
            return data, ()
    flat = read_flat(front)
    if flat is not None:
        return flat, ()
    try:
        data = yaml.load(front, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        return _lines(front), (f"malformed YAML front matter{line}; read key: value lines",)
    except RecursionError:
        return _lines(front), ("front matter nests too deeply; read key: value lines",)
    except ValueError as exc:  # a timestamp YAML recognises but no calendar has: 2021-13-45
        return _lines(front), (f"front matter holds an invalid value ({exc}); read key: value "
                               "lines",)
    if data is None:
        return {}, ()
    if not isinstance(data, dict):
        return _lines(front), ("front matter is not a mapping; read key: value lines",)
    return {str(k): v for k, v in data.items()}, ()


def _json_or_toml(front: str, fence: str) -> dict[str, Any] | None:
    try:
        if fence == "+":
            return tomllib.loads(front)
        stripped = front.strip()
        data = json.loads(stripped if stripped.startswith("{") else "{" + stripped + "}")
    except (ValueError, RecursionError):  # JSONDecodeError and TOMLDecodeError are ValueErrors
        return None
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else None


def read_flat(front: str) -> dict[str, Any] | None:
    """What YAML reads from flat front matter (see ``_UNSAFE``), or None for any other."""
    out: dict[str, Any] = {}
    key: str | None = None  # the key without a value before, whose items may follow
    indent: str | None = None  # the indentation of its items
    for text in front.split("\n"):
        if not text:
            continue
        if text in _LINES:
            line = _LINES[text]
        else:
            line = _line(text)
            if len(text) <= _MEMO_SCALAR_CHARS:
                if len(_LINES) >= _MEMO_SCALARS:
                    _LINES.clear()
                _LINES[text] = line
        if line is None:
            return None
        item, name, value, opens = line
        if item:
            if key is None or indent not in (None, name):
                return None
            if indent is None:
                indent, out[key] = name, []
            out[key].append(value)
            continue
        out[name] = value
        key, indent = (name if opens else None), None
    return out


# Lines come back too (author, comments, categories): each is read once, as (True, indent,
# value, False) for an item, (False, key, value, whether items may follow) for a pair, None
# for a line that is not flat.
_Line = tuple[bool, str, Any, bool]
_LINES: dict[str, _Line | None] = {}


def _line(line: str) -> _Line | None:
    # A printable line holds none of _UNSAFE's characters (they are controls, separators,
    # surrogates or unassigned): the regex, slow per character, is only for the others.
    if not line.isprintable() and _UNSAFE.search(line):
        return None
    if line[0] in " -":
        item = _FLAT_ITEM.fullmatch(line)
        if item is None:
            return None
        value = _scalar(item.group(2).rstrip(" "))
        return None if value is _NOT_FLAT else (True, item.group(1), value, False)
    pair = _FLAT_KEY.fullmatch(line)
    if pair is None or _scalar(pair.group(1)) != pair.group(1):
        return None
    raw = (pair.group(2) or "").rstrip(" ")
    value = _scalar(raw) if raw else None
    return None if value is _NOT_FLAT else (False, pair.group(1), value, not raw)


def _scalar(raw: str) -> Any:
    """The value of one flat scalar, as YAML resolves it, or _NOT_FLAT."""
    value = _SCALARS.get(raw, _SCALARS)
    if value is _SCALARS:
        value = _resolve(raw)
        if len(raw) <= _MEMO_SCALAR_CHARS:
            if len(_SCALARS) >= _MEMO_SCALARS:
                _SCALARS.clear()
            _SCALARS[raw] = value
    return value


def _resolve(raw: str) -> Any:
    quoted = _QUOTED.fullmatch(raw)
    if quoted is not None:
        return quoted.group(1)
    if not raw or raw[0] in _INDICATORS or ": " in raw or " #" in raw or raw.endswith(":"):
        return _NOT_FLAT
    for tag, pattern in _RESOLVERS.get(raw[0], _ANY):
        if pattern.match(raw):
            if tag == _BOOL:
                return yaml.constructor.SafeConstructor.bool_values[raw.lower()]
            if tag == _NULL:
                return None
            if tag == _TIMESTAMP:  # a date or a datetime, as YAML's constructor makes it
                try:
                    return _CONSTRUCTOR.construct_yaml_timestamp(yaml.ScalarNode(tag, raw))
                except (ValueError, OverflowError):  # no such day: YAML says why
                    return _NOT_FLAT
            return _NOT_FLAT
    return raw


def _lines(front: str) -> dict[str, Any]:
    """A forgiving reader: top-level ``key: value`` lines and ``- item`` lists below a key."""
    out: dict[str, Any] = {}
    current: str | None = None
    for line in front.split("\n"):
        item = _ITEM_LINE.match(line)
        if item and current is not None:
            existing = out.get(current)
            if not isinstance(existing, list):
                existing = []
                out[current] = existing
            existing.append(_unquote(item.group(1)))
            continue
        key = _KEY_LINE.match(line)
        if key:
            current = key.group(1)
            value = key.group(2)
            out[current] = _unquote(value) if value else None
        elif line and not line[0].isspace():
            current = None
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def extract(data: dict[str, Any], keys: Sequence[str]) -> Iterator[Found]:
    """Image URLs under the configured keys, as strings or lists of strings; then, under any
    other key, absolute URLs read as links are (a reference when they name a media file or a
    v.qq.com video): themes name their images in many ways (``index_img``, ``banner_img``,
    ``featured_image``, ``gallery``...), and a URL ending in ``.jpg`` is an image whatever
    its key. Only the configured keys make an extensionless URL an image."""
    for key in keys:
        yield from _urls(key, data.get(key), "media")
    for key, value in data.items():
        if isinstance(key, str) and key not in _NOT_MEDIA and key not in keys:
            yield from _urls(key, value, "link")


# Keys that never name media, spared the look.
_NOT_MEDIA = frozenset({"title", "date", "updated", "categories", "tags", "author",
                        "comments", "layout", "permalink", "excerpt", "description"})
_ABSOLUTE = re.compile(r"[ \t]*(?:https?:)?//", re.IGNORECASE)


def _urls(key: str, value: Any, context: Context) -> Iterator[Found]:
    if isinstance(value, str):
        if context == "media" or _ABSOLUTE.match(value):
            yield Found(f"front_matter.{key}", value, context=context)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            url = _item_url(item)
            if url is not None and (context == "media" or _ABSOLUTE.match(url)):
                yield Found(f"front_matter.{key}[{index}]", url, context=context)
    elif isinstance(value, dict):
        url = _item_url(value)
        if url is not None and (context == "media" or _ABSOLUTE.match(url)):
            yield Found(f"front_matter.{key}", url, context=context)


def _item_url(item: Any) -> str | None:
    """A list item is a URL string or a mapping with ``url``/``src`` (some themes' photos)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for name in ("url", "src"):
            if isinstance(item.get(name), str):
                return str(item[name])
    return None


def title_of(data: dict[str, Any]) -> str | None:
    title = data.get("title")
    return None if title is None else str(title)


def date_of(data: dict[str, Any]) -> str | None:
    """The article's ``date`` as written (YAML may have parsed it into a datetime)."""
    value = data.get("date")
    if value is None or isinstance(value, (dict, list)):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)[:100]
