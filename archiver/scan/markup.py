"""The elements of a prefiltered HTML snippet, as BeautifulSoup over lxml sees them.

``elements(snippet)`` is what ``BeautifulSoup(snippet, "lxml").find_all(True)`` gives the
HTML extractor (every element in document order, the ones lxml's HTML parser implies too,
each with its attributes and the innermost ``<video>``, ``<audio>`` or ``<picture>`` around
it), without building BeautifulSoup's tree: that tree cost ten times lxml's own parse. The
same parser (lxml's ``HTMLParser``, with the options bs4 gives it) produces the same start and
end events; a small target object replays what bs4 does with them (an end tag closes up to the
most recent open element of that name, and nothing when none is open). When lxml rejects the
snippet, bs4 itself runs (``elements_bs4``, the reference the tests compare with), so that
every odd input gets exactly its answer.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from lxml import etree  # type: ignore[import-untyped]

CONTAINERS = frozenset({"video", "audio", "picture"})


class Element(NamedTuple):
    """One element: its name, its attributes (names lowercased, as the extractor reads them)
    and the name of the innermost container element around it, if any."""

    name: str
    attrs: dict[str, str]
    inside: str | None


class _Target:
    """lxml parser target: collects the elements as bs4's tree builder would place them."""

    def __init__(self) -> None:
        self.found: list[Element] = []
        self.names: list[str] = []  # the open elements (bs4's tag stack, without the root)
        self.within: list[str | None] = [None]  # innermost container, per open element
        self.counts: dict[str, int] = {}

    def start(self, name: str, attrib: Any) -> None:
        inside = self.within[-1]
        attrs = {k.lower(): v for k, v in attrib.items()} if attrib else {}
        self.found.append(Element(name, attrs, inside))
        self.names.append(name)
        self.within.append(name if name in CONTAINERS else inside)
        self.counts[name] = self.counts.get(name, 0) + 1

    def end(self, name: str) -> None:
        # BeautifulSoup._popToTag: pop up to and including the most recent ``name`` (lxml
        # closes the innermost element: the first case).
        names = self.names
        if names and names[-1] == name:
            names.pop()
            self.within.pop()
            self.counts[name] -= 1
            return
        if not self.counts.get(name):
            return
        while self.names:
            top = self.names.pop()
            self.within.pop()
            self.counts[top] -= 1
            if top == name:
                return

    def close(self) -> list[Element]:
        found = self.found
        self.found, self.names, self.within, self.counts = [], [], [None], {}
        return found


class _Parsers(threading.local):
    """One parser and target per thread (an lxml parser is not shared between threads)."""

    def __init__(self) -> None:
        self.target = _Target()
        # bs4's LXMLTreeBuilder: etree.HTMLParser(target=..., recover=True, huge_tree=False,
        # encoding=None), the whole markup fed at once.
        self.parser = etree.HTMLParser(target=self.target, recover=True, huge_tree=False,
                                       encoding=None)


_LOCAL = _Parsers()


def elements(snippet: str) -> list[Element]:
    """Every element of ``snippet`` in document order (see the module docstring)."""
    local = _LOCAL
    try:
        local.parser.feed(snippet)
        found: list[Element] = local.parser.close()
    except Exception:
        local.target.close()
        local.__init__()  # type: ignore[misc]  # a fresh parser after a failed one
        return elements_bs4(snippet)
    return found


def elements_bs4(snippet: str) -> list[Element]:
    """The reference: the same list, from BeautifulSoup's own tree. bs4 is imported here, on
    the first snippet lxml's target cannot take: with soupsieve and chardet, which it loads,
    it is about 0.13 s of every scanning process's start otherwise."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(snippet, "lxml", multi_valued_attributes=None)
    out = []
    for tag in soup.find_all(True):
        parent = tag.find_parent(list(CONTAINERS))
        attrs = {k.lower(): v for k, v in tag.attrs.items() if isinstance(v, str)}
        out.append(Element(tag.name, attrs, parent.name if parent is not None else None))
    return out
