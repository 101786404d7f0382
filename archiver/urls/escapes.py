"""Bytes that are not UTF-8, kept exactly through text processing and percent-encoded in URLs.

An article with invalid UTF-8 is decoded with the ``archiver-escape`` error handler: each
invalid byte 0xNN becomes the private-use character U+10FE00+NN, which every parser the
scanner uses (YAML, lxml, regular expressions) accepts, where the usual lone surrogates
(``surrogateescape``) make them fail. A URL carrying such a character stands for the byte the
article really holds, so the origin percent-encodes that byte (``%FF``), never U+FFFD's UTF-8
(``%EF%BF%BD``), which is not what the article meant. Text decoded with ``surrogateescape``
(the rewriter, which must write the bytes back exactly) gives the same origins.
"""

from __future__ import annotations

import codecs
import re

HANDLER = "archiver-escape"
_BASE = 0x10FE00  # plane 16 private use: U+10FE80..U+10FEFF for the bytes 0x80..0xFF
_TO_SURROGATE = {_BASE + b: 0xDC00 + b for b in range(0x80, 0x100)}
_TO_PERCENT = {**{_BASE + b: f"%{b:02X}" for b in range(0x80, 0x100)},
               **{0xDC00 + b: f"%{b:02X}" for b in range(0x80, 0x100)}}
_TO_REPLACEMENT = dict.fromkeys(_TO_PERCENT, "\ufffd")
_ESCAPED = re.compile("[\udc80-\udcff\U0010fe80-\U0010feff]")  # the keys of _TO_PERCENT


def _escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start:error.end]
    return "".join(chr(_BASE + b) for b in bad), error.end


codecs.register_error(HANDLER, _escape)


def count(text: str) -> int:
    """How many bytes that were not valid text ``text`` holds (either form)."""
    return len(_ESCAPED.findall(text))


def has_escapes(text: str) -> bool:
    """Whether ``text`` holds bytes that were not valid text (either form)."""
    return _ESCAPED.search(text) is not None


def as_surrogates(text: str) -> str:
    """``text`` with escaped bytes as ``surrogateescape`` characters, so that
    ``quote(..., errors="surrogateescape")`` or ``encode(..., "surrogateescape")`` gives back
    the original bytes."""
    return text if text.isascii() else text.translate(_TO_SURROGATE)


def replaced(text: str) -> str:
    """``text`` for people (titles): escaped bytes shown as U+FFFD."""
    # translate looks up every character: on a title of CJK text that cost more than a search
    return text.translate(_TO_REPLACEMENT) if has_escapes(text) else text


def percent_escapes(text: str) -> str:
    """``text`` with each escaped byte written ``%XX``: what a URL as written is recorded as
    (JSON and terminals take it; the bytes stay visible)."""
    return text if text.isascii() else text.translate(_TO_PERCENT)
