"""YAML front matter: split it from the body, parse it (with a line fallback), find images."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from archiver.scan.collect import Found

# libyaml is ~10x faster; the scanner runs over tens of thousands of articles.
_Loader: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Hexo allows blank lines before the opening fence; the real posts start with one.
_OPEN = re.compile(r"\A\s*?(?:^|\n)(-{3,}|;{3,})[ \t]*\n")
_KEY_LINE = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$")
_ITEM_LINE = re.compile(r"^[ \t]*-[ \t]+(.*?)[ \t]*$")


@dataclass(frozen=True, slots=True)
class Split:
    front: str | None  # the front matter text, without its fences; None when absent
    body: str
    warnings: tuple[str, ...] = ()


def split(text: str) -> Split:
    """Separate the front matter from the body (text already BOM-free with ``\\n`` newlines)."""
    opening = _OPEN.match(text)
    if opening is None:
        return Split(None, text)
    fence = opening.group(1)
    start = opening.end()
    closing = re.compile(rf"^{re.escape(fence[0])}{{3,}}[ \t]*$", re.MULTILINE)
    match = closing.search(text, start)
    if match is None:
        return Split(None, text, ("front matter is not closed; scanned as body",))
    return Split(text[start:match.start()], text[match.end():])


def parse(front: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The front matter as a mapping: YAML, or ``key: value`` lines when YAML fails."""
    try:
        data = yaml.load(front, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        return _lines(front), (f"malformed YAML front matter{line}; read key: value lines",)
    except RecursionError:
        return _lines(front), ("front matter nests too deeply; read key: value lines",)
    if data is None:
        return {}, ()
    if not isinstance(data, dict):
        return _lines(front), ("front matter is not a mapping; read key: value lines",)
    return {str(k): v for k, v in data.items()}, ()


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
    """Image URLs under the configured keys, as strings or lists of strings."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, str):
            yield Found(f"front_matter.{key}", value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                url = _item_url(item)
                if url is not None:
                    yield Found(f"front_matter.{key}[{index}]", url)
        elif isinstance(value, dict):
            url = _item_url(value)
            if url is not None:
                yield Found(f"front_matter.{key}", url)


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
