"""Media references in HTML: lxml over only the tags that can carry one.

Speed comes from a pre-filter: one C-level regex pass picks the start tags that matter (img,
a, iframe, video, audio, source, picture, and any tag whose attributes mention ``url(``,
``v.qq.com`` or a ``data-*`` URL) plus the closing tags of video/audio/picture; lxml's HTML
parser then reads that short string, its elements placed as BeautifulSoup places them
(``markup.elements``). Attribute values come out entity-decoded by the parser, and context (a
``<source>`` inside ``<video>`` or ``<picture>``) is kept because the container tags are kept.
Comments, scripts and styles are removed first: an image written inside them is not displayed
by the article.

Originals behind thumbnails: the real ``</a>`` is kept as an ``<a-end>`` marker, so that a
link holding exactly one ``<img>`` (a thumbnail linked to its full-size image) is seen as one
``Group``, the link first; and an ``<img>`` attribute beyond the usual sources that names a
source or a file and holds an absolute URL (``data-original-src``, ``zoomfile``,
``_cke_saved_src``, ``data-orig-file``, ...) is the original of that ``<img>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from archiver.scan.collect import Context, Found, Group
from archiver.scan.markup import CONTAINERS as _CONTAINERS
from archiver.scan.markup import Element, elements
from archiver.scan.srcset import ONE_X, candidates, largest_first

# Source attributes of <img>, in the order a lazy-loader prefers them: jQuery lazyload
# (data-original, and original in its first versions), lazysizes and most others (data-src),
# WP Rocket and Jetpack (data-lazy-src), Zhihu (data-actualsrc), Echo.js (data-echo), Layzr
# (data-normal), Kissy on Taobao (data-ks-lazyload), ifeng and others (data-lazyload,
# data-lazy), Sina's blogs (real_src). Any URL in them is the image, whatever it looks like.
IMG_SOURCES = ("data-original", "data-src", "data-lazy-src", "data-actualsrc", "data-echo",
               "data-normal", "data-ks-lazyload", "data-lazyload", "data-lazy", "real_src",
               "original", "src")
IMG_SRCSETS = ("data-srcset", "srcset")  # in the same order: of equal candidates, the lazy one
GIF_ATTR = "data-gif-url"
# Other <img> attributes holding an absolute URL whose name says source or file hold the
# original (jianshu data-original-src, Discuz zoomfile/file, CKEditor _cke_saved_src, WordPress
# data-orig-file/data-large-file), ranked by the first word of _RANK the name contains; a name
# that says it is a smaller copy (data-medium-file, data-thumb-src) is a copy, never original.
_SOURCE_NAME = re.compile(r"src|file")
_COPY_NAME = re.compile(r"thumb|small|medium|mini|preview|placeholder|low")
_RANK = ("orig", "zoom", "full", "large", "big")
LINK_END = "a-end"  # the marker prefilter leaves for a real </a>

_TAGGED = frozenset({"img", "a", "iframe", "video", "audio", "source", "picture", "meta", "link",
                     "embed", "object", "amp-img", "amp-anim", "amp-video"})
# A page's own image and video as its head names them (a scraped article saved whole): Open
# Graph, Twitter cards, schema.org's itemprop, by the name of the property they set.
_META_IMAGES = frozenset({"og:image", "og:image:url", "og:image:secure_url", "twitter:image",
                          "twitter:image:src", "image", "thumbnailurl"})
_META_VIDEOS = frozenset({"og:video", "og:video:url", "og:video:secure_url", "twitter:player",
                          "contenturl", "embedurl"})
_VOID = frozenset({"img", "source", "br", "hr", "input", "meta", "link", "embed", "wbr"})

# A start or end tag. Quoted values may hold ">" but not "<", so an unclosed quote stops at
# the next tag instead of swallowing the document; possessive quantifiers keep it linear. The
# third form is a start tag cut off by the next "<" (a lost ">" or an unclosed quote): its
# complete attributes are kept, as a browser keeps them.
_TAG = re.compile(
    r"""<(/?)([a-zA-Z][a-zA-Z0-9:-]*+)((?:[^>"'<]++|"[^"<]*+"|'[^'<]*+')*+)>"""
    r"""|<(/?)([a-zA-Z][a-zA-Z0-9:-]*+)([^<>]*+)>"""
    r"""|<([a-zA-Z][a-zA-Z0-9:-]*+)((?:[^>"'<]++|"[^"<>]*+"|'[^'<>]*+')*+)(?:["'][^<]*+)?+"""
    r"""(?=<|\Z)"""
)
# ``data-[\w-]+\s*=\s*["']?\s*(?:https?:)?//``, tried once per run of [\w-] characters (at
# its first "data-"): every "data-" of a run ends where the run does, so one try says for all,
# where trying each made "data-data-data-..." quadratic.
_INTERESTING = re.compile(
    r"""url\(|v\.qq\.com|(?<![\w-])(?>[\w-]*?data-)[\w-]++\s*+=\s*+["']?\s*+(?:https?:)?//""",
    re.IGNORECASE,
)
_STRIP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
_STYLE_URL = re.compile(r"""url\(\s*(["']?)(.*?)\1\s*\)""", re.IGNORECASE | re.DOTALL)


# A match of _TAG holds no "<" but its first, so every "<" starts its own try, whatever the
# tags before it: only the tries that can yield something need to be made, at a "<" that opens
# or closes one of _TAGGED by name (a wider net is harmless), and at the last "<" before each
# place an _INTERESTING match can start (it holds no "<" either, so it lies within that tag,
# if in any). Those places start with one of _HINTS, whatever the case (the hints hold none of
# the letters that re.IGNORECASE equates with others, such as "s" and "\u017f"). Both are
# looked for in ``_lowered(body)``, the ASCII letters of ``body`` lowercased at its offsets.
_NAMED = re.compile(rb"</?(?:a|img|iframe|video|audio|source|picture|meta|link|embed|object"
                    rb"|amp-img|amp-anim|amp-video)(?![a-z0-9:-])")
_HINTS = (b"url(", b"v.qq.com", b"data-")


def _lowered(body: str) -> bytes:
    """``body`` with its ASCII letters in lower case and every other character as "?", one
    byte per character: where the hints and ``<script`` are, whatever their case (no other
    character lowercases to one of their letters), at the same offsets as in ``body``.
    ``body.lower()`` cost more than the rest of the pass on the posts' Chinese text."""
    return body.encode("ascii", "replace").lower()


def prefilter(body: str, every: bool = False) -> str:
    """The tags that can carry a media reference, as a short HTML string. ``every``: try
    every tag (the reference for the tests), not only the candidates."""
    lowered = _lowered(body)
    if b"<!--" in lowered or b"<script" in lowered or b"<style" in lowered:
        body = _STRIP.sub(" ", body)
        lowered = _lowered(body)
    out: list[str] = []
    for match in _TAG.finditer(body) if every else _candidates(body, lowered):
        closing1, name2, attrs3, closing4, name5, attrs6, name7, attrs8 = match.groups()
        closing = closing1 or closing4
        name = (name2 or name5 or name7).lower()
        attrs = attrs3 if name2 else attrs6 if name5 else attrs8
        if closing:
            if name in _CONTAINERS:
                out.append(f"</{name}>")
            elif name == "a":
                out.append(f"<{LINK_END}></{LINK_END}>")
            continue
        if name in _TAGGED or (attrs and _INTERESTING.search(attrs)):
            out.append(match.group(0) if name7 is None else f"<{name}{attrs}>")
            # Close everything except containers right away, so that lxml never nests
            # content inside an <iframe> or an unclosed <a>.
            if name not in _CONTAINERS and name not in _VOID:
                out.append(f"</{name}>")
    return "".join(out)


def _candidates(body: str, lowered: bytes) -> Iterator[re.Match[str]]:
    """The matches of _TAG that can yield something (see _NAMED), in document order."""
    starts = {m.start() for m in _NAMED.finditer(lowered)}
    for hint in _HINTS:
        at, tag, searched = lowered.find(hint), -1, 0
        while at >= 0:
            # The last "<" before ``at``: looked for after the previous hint only (linear).
            found = body.rfind("<", searched, at)
            tag = found if found >= 0 else tag
            starts.add(tag)
            searched = at
            at = lowered.find(hint, at + 1)
    starts.discard(-1)
    for start in sorted(starts):
        match = _TAG.match(body, start)
        if match is not None:
            yield match


def extract(body: str) -> Iterator[Found | Group]:
    """Every media-like value in the HTML of ``body``, in document order."""
    snippet = prefilter(body)
    if not snippet:
        return
    tags = elements(snippet)
    i = 0
    while i < len(tags):
        tag = tags[i]
        if tag.name == "a" and i + 2 < len(tags) and tags[i + 1].name == "img" \
                and tags[i + 2].name == LINK_END:
            wrapped = _linked_img(tag.attrs, tags[i + 1].attrs)
            if wrapped is not None:
                yield from wrapped
                i += 3
                continue
        yield from _from_tag(tag)
        i += 1


def _linked_img(link: dict[str, str], img: dict[str, str]) -> list[Found | Group] | None:
    """A link around one ``<img>`` (not an animated GIF pair): the link first in one Group
    with the image's values; None when it is not such a pair."""
    gif = img.get(GIF_ATTR, "").strip()
    if "href" not in link or _absolute(gif):
        return None
    originals, copies, used = _img_sources(img)
    if gif:
        copies.insert(0, _found(f"img[{GIF_ATTR}]", gif, hint="gif"))
    href = _found("a[href]", link["href"], context="link")
    out: list[Found | Group] = [Group((href, *originals), tuple(copies))]
    out.extend(_generic("a", link))
    out.extend(_generic("img", img, used))
    return out


def _from_tag(tag: Element) -> Iterator[Found | Group]:
    name, attrs = tag.name, tag.attrs
    used: frozenset[str] = frozenset()
    if name == "img":
        found, used = _img(attrs)
        yield from found
    elif name == "a":
        if "href" in attrs:
            yield _found("a[href]", attrs["href"], context="link")
    elif name == "iframe":
        if "src" in attrs:
            yield _found("iframe[src]", attrs["src"], context="player")
    elif name in ("video", "audio"):
        if "src" in attrs:
            yield _found(f"{name}[src]", attrs["src"], hint="video")
        if "poster" in attrs:
            yield _found(f"{name}[poster]", attrs["poster"])
    elif name == "source":
        yield from _source(tag.inside, attrs)
    elif name in ("amp-img", "amp-anim"):  # AMP pages' <img>
        if "src" in attrs:
            yield _found(f"{name}[src]", attrs["src"])
    elif name == "amp-video":
        if "src" in attrs:
            yield _found(f"{name}[src]", attrs["src"], hint="video")
        if "poster" in attrs:
            yield _found(f"{name}[poster]", attrs["poster"])
    elif name == "meta":
        yield from _meta(attrs)
    elif name == "link":
        if "href" in attrs and "image_src" in attrs.get("rel", "").lower().split():
            yield _found("link[image_src]", attrs["href"])
    elif name in ("embed", "object"):  # media files by their extension (not a Flash player)
        attr = "src" if name == "embed" else "data"
        if attr in attrs:
            yield _found(f"{name}[{attr}]", attrs[attr], context="link")
    yield from _generic(name, attrs, used)


def _meta(attrs: dict[str, str]) -> Iterator[Found]:
    """``<meta property="og:image" content=...>`` and its kind: an image, whatever its URL
    looks like; a video (``og:video``) by its extension or as a v.qq.com page, as a link is."""
    content = attrs.get("content")
    if content is None:
        return
    for attr in ("property", "name", "itemprop"):
        key = attrs.get(attr, "").strip().lower()
        if key in _META_IMAGES:
            yield _found(f"meta[{key}]", content)
            return
        if key in _META_VIDEOS:
            yield _found(f"meta[{key}]", content, context="link")
            return


def _img(attrs: dict[str, str]) -> tuple[list[Found | Group], frozenset[str]]:
    """The references of one ``<img>`` and the attributes they used."""
    gif = attrs.get(GIF_ATTR, "").strip()
    originals, copies, used = _img_sources(attrs)
    if _absolute(gif):
        # One reference: the animated original, with the stills as its alternates.
        stills = tuple(f.value for f in (*originals, *copies))
        return [_found(f"img[{GIF_ATTR}]", gif, hint="gif", stills=stills)], used
    if gif:
        copies.insert(0, _found(f"img[{GIF_ATTR}]", gif, hint="gif"))
    if originals:
        return [Group(tuple(originals), tuple(copies))], used
    return list(copies), used


def _img_sources(attrs: dict[str, str]) -> tuple[list[Found], list[Found], frozenset[str]]:
    """(originals best first, copies, attribute names used) of one ``<img>``: the originals
    are the attributes beyond the usual sources that name a source or file (module
    docstring), then, when it has a srcset, every srcset candidate and the usual sources (1x
    each, as HTML counts a src beside a srcset), the largest first; the copies are the usual
    sources of an image without a srcset and, beside an original, attributes naming a
    smaller copy."""
    sources = [_found(f"img[{a}]", attrs[a]) for a in IMG_SOURCES if a in attrs]
    sized = _by_size("img", attrs, sources)
    named = [a for a, v in attrs.items() if _names_source(a) and _absolute(v)]
    best = sorted((a for a in named if not _COPY_NAME.search(a)), key=_rank)
    if not best and not sized:
        return [], sources, frozenset()
    smaller = [a for a in named if _COPY_NAME.search(a)]
    originals = [_found(f"img[{a}]", attrs[a]) for a in best]
    copies = [_found(f"img[{a}]", attrs[a]) for a in smaller]
    if sized:
        originals.extend(sized)
    else:
        copies[:0] = sources
    return originals, copies, frozenset((*best, *smaller))


def _by_size(tag: str, attrs: dict[str, str], sources: list[Found],
             hint: str | None = None) -> list[Found]:
    """The candidates of a tag's srcset attributes and its ``sources`` (1x each, as HTML
    counts a src beside a srcset), the largest first; none when it has no srcset."""
    sized = [(_found(f"{tag}[{a}]", url, hint=hint), size)
             for a in IMG_SRCSETS if a in attrs for url, size in candidates(attrs[a])]
    return largest_first([*sized, *((f, ONE_X) for f in sources)]) if sized else []


# Whether an <img> attribute's name says it holds a source (the same few dozen names come
# back on every image: each is looked at once). Bounded against hostile input.
_SOURCE_NAMES: dict[str, bool] = {}


def _names_source(name: str) -> bool:
    known = _SOURCE_NAMES.get(name)
    if known is None:
        known = name not in _KNOWN and _SOURCE_NAME.search(name) is not None \
            and "srcset" not in name
        if len(_SOURCE_NAMES) >= 1024:
            _SOURCE_NAMES.clear()
        _SOURCE_NAMES[name] = known
    return known


def _rank(name: str) -> int:
    return next((i for i, word in enumerate(_RANK) if word in name), len(_RANK))


def _absolute(value: str) -> bool:
    return value.strip().lower().startswith(("http:", "https:", "//"))


def _source(inside: str | None, attrs: dict[str, str]) -> Iterator[Found | Group]:
    """A ``<source>``'s srcset as for an ``<img>``: its largest candidate (a src beside it
    counting as 1x) is the reference, the others its copies. Each ``<source>`` of a
    ``<picture>`` stands for itself: another format or another crop is another file."""
    hint = "video" if inside in ("video", "audio") else None
    src = [_found("source[src]", attrs["src"], hint=hint)] if "src" in attrs else []
    sized = _by_size("source", attrs, src, hint)
    if sized:
        yield Group(tuple(sized))
    else:
        yield from src


_KNOWN = frozenset({*IMG_SOURCES, *IMG_SRCSETS, GIF_ATTR, "href", "poster"})


def _generic(name: str, attrs: dict[str, str],
             used: frozenset[str] = frozenset()) -> Iterator[Found]:
    """``style`` url(), and ``id``/``data-*`` values holding a media or v.qq.com URL (those
    not ``used`` as an ``<img>`` source already)."""
    style = attrs.get("style")
    if style and "url(" in style.lower():
        for match in _STYLE_URL.finditer(style):
            yield _found("style:url()", match.group(2))
    for attr, value in attrs.items():
        named = attr == "id" or attr.startswith("data-")
        if named and attr not in _KNOWN and attr not in used \
                and ("//" in value or "v.qq.com" in value):
            yield _found(f"{name}[{attr}]", value, context="link")


def _found(
    where: str, value: str, *, hint: str | None = None, context: Context = "media",
    stills: tuple[str, ...] = (),
) -> Found:
    return Found(where, value, hint, context, stills, entities=False)
