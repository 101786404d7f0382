"""Hexo's tag plugins that name media, read the way Hexo reads them; used by the scanner
(``markdown.extract``) and by ``rewrite --video-tags`` (``players``), so both see the same tags.

- ``{% img [class names] url [width] [height] ['"title" "alt"'] %}``: the source is the first
  argument that is a URL (a scheme and ``//``, ``//`` alone, or a leading ``/``); the words
  before it are class names.
- ``{% iframe url [width] [height] %}``: the first argument.

Arguments split on whitespace, quotes grouping, as Hexo's own argument parser does. Other tags
(``asset_img``: a file of the post's own folder; ``youtube``, ``vimeo``) name nothing archiver
fetches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# ``{% name args %}`` on one line (``{%-``/``-%}`` trim whitespace in Nunjucks). ``image`` is
# the img tag's alias in Hexo. Linear on hostile text: the arguments' characters (no newline,
# no "{", a "%" only when no "}" follows) cannot also end the tag, and a failed match stops at
# the next "{".
_TAG = re.compile(r"\{%-?[ \t]*(img|image|iframe)[ \t]((?:[^\n%{]|%(?!\}))*)%\}")
_ARG = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")
_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//|/", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tag:
    """One media tag: its span in the text, ``img`` or ``iframe``, and its URL as written."""

    start: int
    end: int
    name: str
    url: str


def media_tags(text: str) -> Iterator[Tag]:
    """Every ``img``/``iframe`` tag of ``text`` that names a URL, in order (fenced code is the
    caller's to leave out)."""
    if "{%" not in text:
        return
    for match in _TAG.finditer(text):
        name, args = match.groups()
        args = args.removesuffix("-")  # "-%}"
        url = _source(args) if name != "iframe" else next(iter(_args(args)), None)
        if url:
            yield Tag(match.start(), match.end(), "iframe" if name == "iframe" else "img", url)


def _args(args: str) -> list[str]:
    return [a[1:-1] if len(a) > 1 and a[0] == a[-1] and a[0] in "\"'" else a
            for a in _ARG.findall(args)]


def _source(args: str) -> str | None:
    return next((arg for arg in _args(args) if _URL.match(arg)), None)
