"""``rewrite --video-tags``: a v.qq.com player whose video is archived becomes a ``<video>``.

A player is an ``<iframe>`` whose ``src`` is a v.qq.com video (any form ``urls.canonical_video``
reads), with its ``</iframe>``, and with ZAKER's wrapper when it has one: a ``<div>`` whose
class holds ``iframe_video``, around nothing but the iframe (whitespace aside); or Hexo's
``{% iframe url ... %}`` tag naming one (``scan.hexo``, as the scanner reads it). The whole span
is replaced by

    <video controls preload="none" src="<base>/<video key>" poster="<base>/<thumbnail key>"></video>

(no ``poster`` when no thumbnail was stored), and nothing else in the text changes. Each swap
is returned as a ``Change`` and as a ``Swap`` (the span as written and its replacement), which
the driver keeps in the article's rewrite manifest (``manifest/rewrites/<article>.json``), so
that ``restore`` (``rewrite --undo-video-tags``) puts the player back byte for byte. Players
inside fenced markdown code are left alone, as the scanner ignores them. A second run finds no
player, so it changes nothing. Pure: text in, text out.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archiver import urls
from archiver.rewrite.text import Change, Rewritten, fences, line_and_column
from archiver.scan import hexo

_ATTRS = r"""((?:[^<>"']|"[^"]*"|'[^']*')*)"""
_IFRAME = re.compile(rf"<iframe\b{_ATTRS}>\s*</iframe\s*>", re.IGNORECASE)
# The wrapper's start tag right before the iframe (searched in a bounded window).
_DIV_BEFORE = re.compile(rf"<div\b{_ATTRS}>\s*\Z", re.IGNORECASE)
_DIV_AFTER = re.compile(r"\s*</div\s*>", re.IGNORECASE)
_WINDOW = 4096


@dataclass(frozen=True)
class Video:
    """Where an archived video and its thumbnail are served from."""

    src: str
    poster: str | None = None


@dataclass(frozen=True)
class Swap:
    """One player replaced: its origin, the span as written and what replaced it."""

    origin: str
    original: str
    replacement: str

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "original": self.original,
                "replacement": self.replacement}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Swap:
        return cls(str(data["origin"]), str(data["original"]), str(data["replacement"]))


@dataclass(frozen=True)
class Player:
    start: int
    end: int
    origin: str
    where: str  # "iframe[src]", "div.iframe_video" (ZAKER's wrapper) or "hexo:iframe"


def video_tag(video: Video) -> str:
    """The element a player becomes."""
    poster = f' poster="{html.escape(video.poster)}"' if video.poster else ""
    return f'<video controls preload="none" src="{html.escape(video.src)}"{poster}></video>'


def find_players(text: str) -> Iterator[Player]:
    """Every v.qq.com player of ``text`` outside fenced code, in order."""
    if "iframe" not in text.lower():
        return
    code = fences(text)
    players = sorted((*_iframes(text), *_hexo_iframes(text)), key=lambda p: p.start)
    yield from (p for p in players if not any(a <= p.start < b for a, b in code))


def _iframes(text: str) -> Iterator[Player]:
    for match in _IFRAME.finditer(text):
        src = _attr(match.group(1), "src")
        origin = urls.canonical_video(html.unescape(src)) if src else None
        if origin is None:
            continue
        start, end, where = match.start(), match.end(), "iframe[src]"
        before = _DIV_BEFORE.search(text, max(0, start - _WINDOW), start)
        after = _DIV_AFTER.match(text, end)
        if before and after and "iframe_video" in (_attr(before.group(1), "class") or "").split():
            start, end, where = before.start(), after.end(), "div.iframe_video"
        yield Player(start, end, origin, where)


def _hexo_iframes(text: str) -> Iterator[Player]:
    for tag in hexo.media_tags(text):
        origin = urls.canonical_video(tag.url) if tag.name == "iframe" else None
        if origin is not None:
            yield Player(tag.start, tag.end, origin, "hexo:iframe")


def swap_players(text: str, videos: Mapping[str, Video]) -> tuple[Rewritten, tuple[Swap, ...]]:
    """``text`` with every player whose origin is a key of ``videos`` replaced by its
    ``<video>`` element; everything else as it was."""
    out: list[str] = []
    changes: list[Change] = []
    swaps: list[Swap] = []
    done = 0
    for player in find_players(text) if videos else ():
        video = videos.get(player.origin)
        if video is None:
            continue
        old, new = text[player.start:player.end], video_tag(video)
        line, column = line_and_column(text, player.start)
        changes.append(Change(line, column, player.where, old, new, player.origin))
        swaps.append(Swap(player.origin, old, new))
        out += [text[done:player.start], new]
        done = player.end
    if not changes:
        return Rewritten(text), ()
    out.append(text[done:])
    return Rewritten("".join(out), tuple(changes)), tuple(swaps)


def restore(text: str, swaps: Sequence[Swap]) -> Rewritten:
    """``text`` with each swap's replacement put back to the player it replaced (one left out
    of the text, as after a later edit, is simply not found)."""
    originals = {swap.replacement: swap for swap in swaps}
    if not originals:
        return Rewritten(text)
    pattern = re.compile("|".join(re.escape(r) for r in sorted(originals, key=len,
                                                                  reverse=True)))
    out: list[str] = []
    changes: list[Change] = []
    done = 0
    for match in pattern.finditer(text):
        swap = originals[match.group(0)]
        line, column = line_and_column(text, match.start())
        changes.append(Change(line, column, "video", match.group(0), swap.original,
                              swap.origin))
        out += [text[done:match.start()], swap.original]
        done = match.end()
    if not changes:
        return Rewritten(text)
    out.append(text[done:])
    return Rewritten("".join(out), tuple(changes))


def _attr(attrs: str, name: str) -> str | None:
    match = re.search(rf"""(?:^|\s){name}\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""",
                      attrs, re.IGNORECASE)
    if match is None:
        return None
    return next(g for g in match.groups() if g is not None)
