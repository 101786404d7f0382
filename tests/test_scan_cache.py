"""The scan cache (archiver.plan.scancache): a re-run reads and hashes every article but parses
only what changed, with output identical to a scan without it; a changed setting or scanner
version re-parses; a damaged cache is rebuilt, never believed."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archiver.models import ArticleScan
from archiver.plan import scancache
from archiver.plan.scancache import CacheStats, cache_path, scan_cached
from archiver.scan import scan_paths
from archiver.settings import ScanSettings
from tests.conftest import CORPUS, FIXTURES


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Articles the real scan_text parsed through the cache (the hook counts, it does not
    replace)."""
    seen: list[str] = []
    real: Callable[..., ArticleScan] = scancache.scan_text

    def counted(text: str, article: str, *args: Any, **kwargs: Any) -> ArticleScan:
        seen.append(article)
        return real(text, article, *args, **kwargs)

    monkeypatch.setattr(scancache, "scan_text", counted)
    return seen


def cached(folder: Path, settings: ScanSettings) -> tuple[list[ArticleScan], CacheStats]:
    stats = CacheStats()
    return list(scan_cached([str(folder)], settings, stats)), stats


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    shutil.copytree(FIXTURES, folder)
    return folder


@pytest.mark.parametrize("folder", [CORPUS, FIXTURES], ids=["real corpus", "fixtures"])
def test_second_scan_parses_nothing_and_gives_the_same_scans(folder: Path,
                                                             parses: list[str]) -> None:
    if not folder.is_dir():
        pytest.skip(f"real corpus not present at {folder}")  # as every real-corpus test
    settings = ScanSettings(workers=1)
    without = list(scan_paths([str(folder)], settings))
    first, stats = cached(folder, settings)
    assert first == without
    assert stats.parsed == len(without) == len(parses) and stats.hits == 0
    parses.clear()
    second, stats = cached(folder, settings)
    assert second == without
    assert parses == [] and stats.parsed == 0 and stats.hits == len(without)
    assert stats.problems == []
    # References decoded from the cache (their fields filled in one update) are the
    # scanner's in every way: equal, same hash and repr, fields as set, still frozen.
    refs = [(a, b) for x, y in zip(second, without, strict=True)
            for a, b in zip(x.references, y.references, strict=True)]
    assert refs and all(hash(a) == hash(b) and repr(a) == repr(b) and vars(a) == vars(b)
                        for a, b in refs)
    with pytest.raises(AttributeError):
        refs[0][0].kind = "video"  # type: ignore[misc]


def test_a_few_articles_are_looked_up_in_a_larger_cache(articles: Path,
                                                       parses: list[str]) -> None:
    settings = ScanSettings(workers=1)
    cached(articles, settings)  # the whole tree: the one-article lookups below go by key
    one = [str(articles / "articles" / "markdown.md")]  # named alone: its id is "markdown"
    list(scan_cached(one, settings))
    parses.clear()
    stats = CacheStats()
    assert list(scan_cached(one, settings, stats)) == list(scan_paths(one, settings))
    assert parses == [] and stats.hits == 1


def test_an_article_named_twice_is_scanned_twice(articles: Path) -> None:
    settings = ScanSettings(workers=1)
    twice = [str(articles / "articles" / "markdown.md")] * 2
    expected = list(scan_paths(twice, settings))
    for _ in range(2):  # cold, then warm
        assert list(scan_cached(twice, settings)) == expected


def test_a_changed_article_alone_is_parsed_again(articles: Path, parses: list[str]) -> None:
    settings = ScanSettings(workers=1)
    cached(articles, settings)
    target = articles / "articles" / "markdown.md"
    target.write_text(target.read_text(encoding="utf-8")
                      + '\n<img src="https://img.example.com/added.jpg">\n', encoding="utf-8")
    parses.clear()
    scans, stats = cached(articles, settings)
    assert parses == ["articles/markdown"] and stats.parsed == 1
    assert scans == list(scan_paths([str(articles)], settings))
    assert any(ref.origin == "https://img.example.com/added.jpg"
               for scan in scans for ref in scan.references)


def test_a_changed_setting_or_scanner_version_parses_again(
        articles: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ScanSettings(workers=1)
    n = len(cached(articles, settings)[0])
    changed = settings.model_copy(update={"default_scheme": "http"})
    parses.clear()
    scans, _ = cached(articles, changed)
    assert len(parses) == n and scans == list(scan_paths([str(articles)], changed))
    # Settings that do not change what is found share the entries.
    parses.clear()
    cached(articles, settings.model_copy(update={"workers": 2}))
    assert parses == []
    monkeypatch.setattr(scancache, "SCANNER_VERSION", scancache.SCANNER_VERSION + 1)
    scancache._code_digest.cache_clear()
    try:
        cached(articles, settings)
        assert len(parses) == n
    finally:
        monkeypatch.undo()
        scancache._code_digest.cache_clear()


def test_a_damaged_cache_is_rebuilt_and_never_believed(articles: Path,
                                                       parses: list[str]) -> None:
    settings = ScanSettings(workers=1)
    expected = list(scan_paths([str(articles)], settings))
    cached(articles, settings)
    path = cache_path(settings)
    # One entry's value altered behind the cache's back: its CRC no longer matches.
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE scans SET value = CAST(replace(CAST(value AS TEXT), 'https', "
                     "'httpx') AS BLOB) WHERE key = (SELECT min(key) FROM scans)")
    parses.clear()
    scans, stats = cached(articles, settings)
    assert scans == expected and stats.parsed == 1 and stats.written == 1
    # The whole file overwritten with garbage: removed, rebuilt, every article parsed.
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"not a database" * 512)
    parses.clear()
    scans, stats = cached(articles, settings)
    assert scans == expected and len(parses) == len(expected)
    assert any("rebuilt" in problem for problem in stats.problems)
    parses.clear()
    scans, stats = cached(articles, settings)
    assert scans == expected and parses == [] and stats.problems == []


def test_the_cache_keeps_at_most_its_bound(articles: Path) -> None:
    settings = ScanSettings(workers=1, cache_entries=3)
    scans, _ = cached(articles, settings)
    assert len(scans) > 3
    with sqlite3.connect(cache_path(settings)) as conn:
        assert conn.execute("SELECT count(*) FROM scans").fetchone() == (3,)
    assert cached(articles, settings)[0] == scans


def test_the_cache_lives_where_the_settings_say(articles: Path, tmp_path: Path) -> None:
    settings = ScanSettings(workers=1, cache_dir=str(tmp_path / "elsewhere"))
    cached(articles, settings)
    assert (tmp_path / "elsewhere" / scancache.FILE_NAME).is_file()
    off = ScanSettings(workers=1, cache=False, cache_dir=str(tmp_path / "off"))
    assert cached(articles, off)[0] == list(scan_paths([str(articles)], off))
    assert not (tmp_path / "off").exists()


def test_a_first_run_writes_its_entries_as_it_goes(articles: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scancache, "_WRITE_EVERY", 3)  # several transactions
    settings = ScanSettings(workers=1)
    scans, stats = cached(articles, settings)
    assert stats.written == len(scans) > 3
    again, stats = cached(articles, settings)
    assert again == scans and stats.hits == len(scans)
