"""Per-article manifests: each reference of an article with the summary of its asset's record,
written only when it changed (told by one map of digests instead of a listing); and each
article's rewrite manifest, what ``rewrite --video-tags`` replaced (kept apart, so that a later
archive run of the rewritten article, which rewrites its manifest, cannot lose it)."""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from archiver import models
from archiver.errors import ObjectMissing
from archiver.manifest.records import JSON_TYPE, dumps, parallel_map
from archiver.manifest.rows import SUMMARY, Rows
from archiver.models import ArticleScan, asset_id
from archiver.store.base import Store
from archiver.store.keys import encode_path

ARTICLES_PREFIX = "manifest/articles/"
REWRITES_PREFIX = "manifest/rewrites/"
DIGESTS_KEY = "manifest/article-digests.json"
# What an article manifest copies from its assets' index rows.
_SUMMARY_FIELDS = SUMMARY  # ("status", "key", "sha256", "size", "content_type", "error")
_summary = operator.itemgetter(*_SUMMARY_FIELDS)


# Ids that ``encode_path`` leaves as they are (quote's unreserved characters, no empty or
# dot-led segment, short): most of them, spared its per-segment quote on every re-run.
_PLAIN = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]{0,199}(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)*")


def article_key(article: str) -> str:
    """``manifest/articles/<article id, made key-safe>.json``."""
    plain = len(article) <= 200 and _PLAIN.fullmatch(article) is not None
    return f"{ARTICLES_PREFIX}{article if plain else encode_path(article)}.json"


def article_doc(scan: ArticleScan, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An article's manifest: each reference with the summary of its asset's record."""
    references = []
    counts: dict[str, int] = {}
    for ref in scan.references:
        entry = ref.to_dict()
        entry.pop("article")
        entry["asset"] = asset_id(ref.origin)
        row = rows.get(entry["asset"])
        for name in _SUMMARY_FIELDS:
            entry[name] = row.get(name) if row else None
        entry["status"] = entry["status"] or "pending"
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        references.append(entry)
    return {
        "article": scan.article,
        "path": scan.path,
        "title": scan.title,
        "date": scan.date,
        "counts": counts,
        "references": references,
        "skipped": [{"where": s.where, "value": s.value, "reason": s.reason}
                    for s in scan.skipped],
        "warnings": list(scan.warnings),
    }


def write_articles(store: Store, scans: Iterable[ArticleScan],
                   rows: Mapping[str, Mapping[str, Any]], workers: int = 16,
                   sources: Mapping[tuple[str, str], bytes] | None = None,
                   index: bytes | None = None,
                   written: Mapping[str, str] | None = None) -> int:
    """Write ``manifest/articles/<id>.json`` for each scan from the index ``rows``; return how
    many changed.

    Which article manifests changed is told by ``manifest/article-digests.json`` (article key
    -> sha256 of its manifest, then the digest of what it was built from), one GET instead of
    listing every article; without it (an older archive), by a listing and the objects' MD5
    ETags or bytes. Only the manifests to write are held (the others are hashed and dropped).

    ``sources``: (article, path) -> the scan cache's key of the bytes the scan was made from
    (``CacheStats.keys``). A manifest is a function of its scan (of that key and the path) and
    of the summary fields of its assets' rows: when their digest (``_inputs``) is the one the
    map holds, the manifest is not rebuilt at all. Any difference (the article's bytes, any
    summary field of any of its assets, this module's or the models' code) rebuilds it and
    compares as before.

    ``index``: the sha256 of the index when ``rows`` are exactly its rows (nothing read or
    written since). Then a third digest, of the code, that index and the article's source
    key and path, stands for all of the above at the cost of one small hash per article: a
    re-run of unchanged articles over an unchanged index looks at no row.

    ``written``: article key -> "sha256 made-of" of the manifests written during the run
    (``early.EarlyArticles``); one whose made-of digest is still the one ``rows`` give is not
    built or written again, only entered in the map."""
    digests = _read_digests(store)
    known = digests or {}
    inputs = _Inputs(rows) if sources else None
    settled = _settled(index) if sources and index else None
    fresh: dict[str, str] = {}
    changed: dict[str, bytes] = {}  # the last scan of an article decides, as it always did
    ahead: set[str] = set()  # written during the run, still current
    for scan in scans:
        key = article_key(scan.article)
        source = sources.get((scan.article, scan.path)) if sources else None
        old = known.get(key, "")
        quick = _of(settled, scan, source) if settled is not None and source else ""
        if quick and old.endswith(" " + quick):
            fresh[key] = old  # same code, index, bytes and path: the same manifest
            changed.pop(key, None)
            continue
        made_of = inputs.of(scan, source) if inputs is not None and source else ""
        early = (written.get(key) or "").split(" ") if written else []
        if made_of and early[1:] == [made_of]:
            fresh[key] = " ".join((early[0], made_of, quick)).rstrip()  # written in the run
            changed.pop(key, None)
            ahead.add(key)
            continue
        built = old.split(" ")
        if made_of and built[1:2] == [made_of]:
            fresh[key] = " ".join((built[0], made_of, quick)).rstrip()  # the same bytes
            changed.pop(key, None)
            continue
        body = dumps(article_doc(scan, rows))
        sha = hashlib.sha256(body).hexdigest()
        if made_of:
            fresh[key] = " ".join((sha, made_of, quick)).rstrip()
        else:  # the same bytes: what the entry says they were made of still makes them
            fresh[key] = old if built[0] == sha else sha
        if digests is not None and old.split(" ", 1)[0] == sha:
            changed.pop(key, None)
        else:
            changed[key] = body
    if digests is None:
        unchanged = _unchanged_by_listing(store, changed, workers)
        changed = {key: body for key, body in changed.items() if key not in unchanged}
        digests = {}

    def write(item: tuple[str, bytes]) -> None:
        store.put_bytes(item[0], item[1], JSON_TYPE, overwrite=True)

    parallel_map(write, list(changed.items()), workers)
    new = {**digests, **fresh}
    if new != digests:
        # Written after the manifests themselves: a crash in between costs a rewrite of
        # identical bytes next time, never a stale manifest taken for current.
        store.put_bytes(DIGESTS_KEY, dumps(new), JSON_TYPE, overwrite=True)
    return len(changed) + len(ahead - changed.keys())


@functools.cache
def _code() -> bytes:
    """What an article manifest's layout depends on besides its inputs: this module and the
    models (``Reference.to_dict``, ``asset_id``)."""
    digest = hashlib.sha256(f"article manifest {_SUMMARY_FIELDS}\0".encode())
    for path in (Path(__file__), Path(models.__file__)):
        digest.update(path.read_bytes() + b"\0")
    return digest.digest()


class _Inputs:
    """The digest of what an article manifest is made of: the code (``_code``), the scan's
    source key and path, and the summary fields of each reference's row in order."""

    def __init__(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        self.rows = rows
        # Compact rows give their summary fields without making a dict of the row.
        self.summary = rows.summary if isinstance(rows, Rows) else self._summary
        self.base = hashlib.blake2b(_code(), digest_size=16)

    def _summary(self, asset: str) -> tuple[Any, ...] | None:
        row = self.rows.get(asset)
        try:  # every index row has the summary fields; a damaged one may not
            return _summary(row) if row else None
        except KeyError:
            return tuple(row.get(n) for n in _SUMMARY_FIELDS) if row else None

    def of(self, scan: ArticleScan, source: bytes) -> str:
        summary = self.summary
        # One repr of the article's fields (self-delimiting, the same in every process).
        made_of = (scan.article, scan.path,
                   [summary(asset_id(ref.origin)) for ref in scan.references])
        digest = self.base.copy()
        digest.update(source + repr(made_of).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()


def made_of(rows: Mapping[str, Mapping[str, Any]], scan: ArticleScan, source: bytes) -> str:
    """The digest of what ``scan``'s manifest is made of over ``rows`` (``_Inputs``)."""
    return _Inputs(rows).of(scan, source)


def _settled(index: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(_code() + b"index " + index, digest_size=16)


def _of(base: hashlib.blake2b, scan: ArticleScan, source: bytes) -> str:
    digest = base.copy()
    digest.update(source + repr((scan.article, scan.path)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _read_digests(store: Store) -> dict[str, str] | None:
    try:
        data = json.loads(store.get_bytes(DIGESTS_KEY))
    except ObjectMissing:
        return None
    except ValueError:
        return {}  # damaged: every article manifest is rewritten, then the map
    return {k: v for k, v in data.items() if isinstance(v, str)} \
        if isinstance(data, dict) else {}


def _unchanged_by_listing(store: Store, bodies: dict[str, bytes], workers: int) -> set[str]:
    listed = {info.key: info for info in store.list(ARTICLES_PREFIX)}

    def same(item: tuple[str, bytes]) -> bool:
        key, body = item
        info = listed.get(key)
        if info is None or info.size != len(body):
            return False
        if info.etag == hashlib.md5(body, usedforsecurity=False).hexdigest():
            return True
        return store.get_bytes(key) == body

    # Only a listed manifest of the same size can be unchanged: no thread is started for the
    # others (a store's first run lists none, and has a hundred manifests to write).
    items = [(key, body) for key, body in bodies.items()
             if (info := listed.get(key)) is not None and info.size == len(body)]
    return {key for (key, _), ok in zip(items, parallel_map(same, items, workers), strict=True)
            if ok}


def iter_articles(store: Store) -> Iterator[dict[str, Any]]:
    """Every article manifest (as written by ``write_articles``), in key order; unreadable
    ones are left out."""
    for key in sorted(info.key for info in store.list(ARTICLES_PREFIX)
                      if info.key.endswith(".json")):
        try:
            doc = json.loads(store.get_bytes(key))
        except (ObjectMissing, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("article"), str):
            yield doc


def rewrites_key(article: str) -> str:
    """``manifest/rewrites/<article id, made key-safe>.json``."""
    return f"{REWRITES_PREFIX}{encode_path(article)}.json"


def load_swaps(store: Store, article: str) -> list[dict[str, Any]]:
    """The element swaps recorded for ``article`` (origin, original, replacement), oldest
    first; none when there is no rewrite manifest or it is unreadable."""
    try:
        doc = json.loads(store.get_bytes(rewrites_key(article)))
    except (ObjectMissing, ValueError):
        return []
    swaps = doc.get("swaps") if isinstance(doc, dict) else None
    return [s for s in swaps or () if isinstance(s, dict)
            and all(isinstance(s.get(k), str) for k in ("origin", "original", "replacement"))]


def save_swaps(store: Store, article: str, swaps: Iterable[Mapping[str, Any]]) -> None:
    """Add ``swaps`` to the article's rewrite manifest (one entry per distinct swap; earlier
    entries are kept, so a swap stays reversible whatever ran since)."""
    entries = load_swaps(store, article)
    for swap in swaps:
        entry = {k: str(swap[k]) for k in ("origin", "original", "replacement")}
        if entry not in entries:
            entries.append(entry)
    store.put_bytes(rewrites_key(article), dumps({"article": article, "swaps": entries}),
                    JSON_TYPE, overwrite=True)
