"""The scan of one article (``scan_text``) and of many paths (``scan_paths``)."""

from __future__ import annotations

import html as html_module
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO, TypeVar
from urllib.parse import urljoin

from archiver import urls
from archiver.models import ArticleScan
from archiver.scan import frontmatter, html, markdown
from archiver.scan.articles import (
    STDIN,
    Source,
    Text,
    clean_text,
    discover,
    read_file,
    read_stream,
)
from archiver.scan.collect import Collector
from archiver.settings import ScanSettings
from archiver.urls.escapes import replaced

if TYPE_CHECKING:  # multiprocessing is loaded by a scan large enough for processes
    from concurrent.futures import Future, ProcessPoolExecutor

T = TypeVar("T")


# A saved page's <base href>: the first one counts, as for a browser.
_BASE = re.compile(r"""<base\b[^>]*?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""",
                   re.IGNORECASE)


def document_settings(text: str, settings: ScanSettings) -> ScanSettings:
    """The settings ``text``'s relative URLs are read with: a saved page's ``<base href>``
    (resolved against ``scan.base_url`` when relative) is their base when it is http(s);
    else ``settings`` as they are. The scanner and ``rewrite`` both read an article so."""
    if "<base" not in text and "<BASE" not in text:
        return settings
    found = _BASE.search(text)
    if found is None:
        return settings
    href = html_module.unescape(next(g for g in found.groups() if g is not None)).strip()
    if href.startswith("//"):
        href = f"{settings.default_scheme}:{href}"
    base = urljoin(settings.base_url, href) if settings.base_url else href
    if not base.lower().startswith(("http://", "https://")) or base == settings.base_url:
        return settings
    return settings.model_copy(update={"base_url": base})


def scan_text(text: str, article: str, settings: ScanSettings, path: str = "") -> ArticleScan:
    """Every media reference of one article's text (front matter, HTML, markdown).

    Never raises for malformed content: problems become ``warnings``.
    """
    text = clean_text(text)
    settings = document_settings(text, settings)
    collector = Collector(article, settings)
    parts = frontmatter.split(text)
    warnings = list(parts.warnings)
    title: str | None = None
    date: str | None = None
    if parts.front is not None:
        data, problems = frontmatter.parse(parts.front, parts.fence)
        warnings.extend(problems)
        title = frontmatter.title_of(data)
        title = replaced(title) if title else title  # undecodable bytes shown as U+FFFD
        date = frontmatter.date_of(data)
        for found in frontmatter.extract(data, settings.image_keys):
            collector.add(found)
    for item in html.extract(parts.body):
        collector.add(item)
    for item in markdown.extract(parts.body):
        collector.add(item)
    return ArticleScan(
        article=article,
        path=path,
        references=collector.references(),
        skipped=collector.skipped(),
        warnings=tuple(warnings),
        title=title,
        date=date,
    )


# Files before spreading a scan over processes pays off; articles per task.
PARALLEL_MIN_FILES = 400
CHUNK = 100
FORK = hasattr(os, "fork")  # multiprocessing's "fork" start method is there


def scan_paths(
    paths: Sequence[str], settings: ScanSettings, stdin: TextIO | None = None
) -> Iterator[ArticleScan]:
    """Scan files, directories (recursively, by extension) and ``-`` (``stdin``), in order.

    Large sets of files are scanned by ``settings.workers`` processes (0: one per core),
    started before this returns. Raises ConfigError for a ``[[scan.links]]`` rule that does
    not unwrap its own examples and ScanError for a missing path, before scanning anything;
    unreadable, binary or oversized articles yield an ArticleScan with a warning and no
    references.
    """
    urls.check_links(settings.links)  # a rule that misreads its own examples: ConfigError
    sources = discover(paths, settings)  # raises now, not at the first next()
    workers = settings.workers or os.cpu_count() or 1
    if workers > 1 and len(sources) >= PARALLEL_MIN_FILES and FORK \
            and all(s.path != STDIN for s in sources):
        return _scan_parallel(sources, settings, workers)
    return _scan_sources(sources, settings, stdin)


def _scan_parallel(sources: Sequence[Source], settings: ScanSettings,
                   workers: int) -> Iterator[ArticleScan]:
    # Forked (no re-import of the caller's main module, as spawn would need), and forked now,
    # before the caller starts threads (the planner lists the manifest beside the scan).
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
    try:
        futures = [pool.submit(_scan_chunk, sources[i:i + CHUNK], settings)
                   for i in range(0, len(sources), CHUNK)]
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    return pooled_results(pool, futures)


def pooled_results(pool: ProcessPoolExecutor, futures: list[Future[list[T]]]) -> Iterator[T]:
    """The futures' lists in order, as one iterator; the pool shut down at its end."""
    with pool:
        try:
            for future in futures:
                yield from future.result()
        finally:
            for future in futures:
                future.cancel()


def _scan_chunk(sources: Sequence[Source], settings: ScanSettings) -> list[ArticleScan]:
    return list(_scan_sources(sources, settings, None))


def _scan_sources(
    sources: Sequence[Source], settings: ScanSettings, stdin: TextIO | None
) -> Iterator[ArticleScan]:
    for source in sources:
        article, path = source.article, source.path
        if path == STDIN:
            text = read_stream(stdin, settings) if stdin is not None else Text(
                None, ("skipped: no standard input given",))
        else:
            text = read_file(path, settings)
        if text.text is None:
            yield ArticleScan(article=article, path=path, warnings=text.warnings)
            continue
        scan = scan_text(text.text, article, settings, path)
        if text.warnings:
            scan = replace(scan, warnings=text.warnings + scan.warnings)
        yield scan
