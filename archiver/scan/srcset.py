"""srcset: its candidates, each with the size its descriptor gives, and the largest first.

``<img srcset="a-480.jpg 480w, a-960.jpg 960w" src="a.jpg">`` writes one image in several
sizes: the largest candidate is the original to archive and the others are its copies (the
HTML extractor makes them one ``Group``, as for a thumbnail inside a link to its original).

Candidates are read by the HTML standard's rules, in one linear pass: a URL runs to
whitespace (so it may hold commas), a trailing comma ends a candidate, its descriptors run to
the next comma outside parentheses. Where the standard drops a candidate (an unreadable or
repeated descriptor) it is kept here, as 1x: a URL written in an article is not thrown away.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

# (width, density): a "640w" candidate is (640, 1.0), a "2x" one (-1, 2.0). Compared as
# tuples, widths come first: HTML forbids mixing the two in one srcset, but an <img> has two
# (srcset, data-srcset) and a src beside them.
Size = tuple[int, float]
ONE_X: Size = (-1, 1.0)  # no descriptor, an unreadable one, or a src beside a srcset

_URL = re.compile(r"[\s,]*+(\S*+)")
_DESCRIPTORS = re.compile(r"(?:[^,(]++|\([^)]*+\)?+)*+")
_TOKEN = re.compile(r"(?:[^\s(]++|\([^)]*+\)?+)++")  # a descriptor: "(...)" is one piece
# Bounded digits: int() refuses more than 4,300 of them (and no image is 10**12 px wide).
_WIDTH = re.compile(r"[0-9]{1,12}[wW]")
_DENSITY = re.compile(
    r"(?:[0-9]{1,12}(?:\.[0-9]{1,12})?|\.[0-9]{1,12})(?:[eE][+-]?[0-9]{1,3})?[xX]")


def candidates(srcset: str) -> list[tuple[str, Size]]:
    """Every candidate of ``srcset`` in the order written: (URL as written, its size)."""
    out: list[tuple[str, Size]] = []
    pos, end = 0, len(srcset)
    while pos < end:
        match = _URL.match(srcset, pos)
        assert match is not None  # both parts may be empty
        url, pos = match.group(1), match.end()
        if not url:
            break  # only separators were left
        if url.endswith(","):
            out.append((url.rstrip(","), ONE_X))
            continue
        described = _DESCRIPTORS.match(srcset, pos)
        assert described is not None
        pos = described.end()
        out.append((url, _size(described.group())))
    return out


def _size(descriptors: str) -> Size:
    width: int | None = None
    density: float | None = None
    for token in _TOKEN.findall(descriptors):
        if width is None and _WIDTH.fullmatch(token):
            width = int(token[:-1])
        elif density is None and _DENSITY.fullmatch(token):
            density = float(token[:-1])
    return (-1 if width is None else width, 1.0 if density is None else density)


def largest_first(sized: Iterable[tuple[T, Size]]) -> list[T]:
    """The items, largest first: by width when they have one (those without after them, by
    density), else by density; equals keep their order (so the first written wins a tie)."""
    ordered = sorted(sized, key=lambda item: item[1], reverse=True)  # stable, reversed too
    return [item for item, _ in ordered]
