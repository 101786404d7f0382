"""Markdown image syntax: inline ``![alt](url "title")``, ``![alt](<url>)``, reference style
``![alt][id]`` / ``![id][]`` / ``![id]`` with ``[id]: url``, and links to media files, also as
autolinks ``<https://...>``; and Hexo's tag plugins for media (``hexo``: ``{% img ... %}``,
``{% iframe ... %}``, where a v.qq.com player is a video).

Regular expressions, not a markdown parser: the posts are HTML with the odd markdown image,
and a full CommonMark parse of every article would cost more than the rest of the scan.
Fenced code blocks are skipped (an example in a code block is not an image of the article).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from archiver.scan import hexo
from archiver.scan.collect import Found, Group

_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)
# Destination: <...> or a run without spaces whose parentheses may nest one level.
_DEST = r"""(<[^<>\n]*>|(?:[^\s()<>]|\([^\s()]*\))+)"""
_TITLE = r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?"""
_INLINE = re.compile(r"(!?)\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\(\s*" + _DEST + _TITLE + r"\s*\)")
_REF_USE = re.compile(r"!\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\](?:\[([^\[\]\n]*)\])?")
# CommonMark autolinks of http(s) URLs (other schemes name no media).
_AUTOLINK = re.compile(r"<(https?://[^\x00-\x20<>]*)>", re.IGNORECASE)
_REF_DEF = re.compile(r"^[ \t]{0,3}\[([^\[\]\n]+)\]:[ \t]*(<[^<>\n]*>|\S+)" + _TITLE
                      + r"[ \t]*$", re.MULTILINE)


def extract(body: str) -> Iterator[Found | Group]:
    """Every markdown image (and link to a media file) in ``body``, in document order; then
    the autolinks and Hexo tags; none inside fenced code (removed once, for both, when
    either may find something)."""
    # (One character is looked for faster than two: most posts hold no "]"; tags and
    # autolinks are rare, and cheap to rule out.)
    markdown = ("]" in body and ("](" in body or "]:" in body)) or "![" in body
    tags = "{%" in body or "<http" in body or "<HTTP" in body
    if not (markdown or tags):
        return
    if "```" in body or "~~~" in body:
        body = _FENCE.sub("", body)
    if markdown:
        yield from _markdown(body)
    if tags:
        yield from _tags(body)


def _markdown(body: str) -> Iterator[Found | Group]:
    yield from _inline(body)
    if "]:" not in body:
        return
    defs = {_label(m.group(1)): _dest(m.group(2)) for m in reversed(list(_REF_DEF.finditer(body)))}
    if not defs:
        return
    for match in _REF_USE.finditer(body):
        end = match.end()
        if body[end:end + 1] == "(":  # an inline image, handled above
            continue
        alt, label = match.groups()
        url = defs.get(_label(label or alt))
        if url is not None:
            yield Found("markdown:refdef", url)


def _tags(body: str) -> Iterator[Found]:
    """Autolinks (a reference when they name a media file or a video, as links) and Hexo's
    media tags."""
    for tag in hexo.media_tags(body):
        yield Found(f"hexo:{tag.name}", tag.url,
                    context="player" if tag.name == "iframe" else "media")
    for match in _AUTOLINK.finditer(body):
        # A link destination in brackets (``![a](<url>)``, ``[id]: <url>``) is not an
        # autolink: those are read above.
        if not body[max(0, match.start() - 64):match.start()].rstrip().endswith(("](", "]:")):
            yield Found("markdown:autolink", match.group(1), context="link")


def _inline(text: str, depth: int = 0) -> Iterator[Found | Group]:
    for match in _INLINE.finditer(text):
        bang, label, dest = match.groups()
        url = _dest(dest)
        if bang:
            yield Found("markdown:image", url)
            continue
        link = Found("markdown:link", url, context="link")
        # A link around a thumbnail, ``[![alt](thumb)](full)``: when the link names an
        # image, it is the original and the thumbnail its alternate; otherwise the image
        # inside is its own reference and the link one only when it names a media file.
        inner = _INLINE.fullmatch(label.strip())
        if inner is not None and inner.group(1):
            yield Group((link,), (Found("markdown:image", _dest(inner.group(3))),))
            continue
        if depth < 2 and "![" in label:
            yield from _inline(label, depth + 1)
        yield link


def _dest(dest: str) -> str:
    if dest.startswith("<") and dest.endswith(">"):
        return dest[1:-1]
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", dest)


def _label(label: str) -> str:
    """Labels match case-insensitively with whitespace collapsed, as CommonMark says."""
    return " ".join(label.split()).casefold()
