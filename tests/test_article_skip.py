"""Article manifests of unchanged articles are not rebuilt (issue 11's re-run): the digest map
remembers what each was built from (the scan cache's key of the article's bytes, its path,
its assets' summary fields), and anything else rewrites it: a changed article, a record
re-archived, archived through another route, or archived after failing, and a missing or
damaged manifest once the map is gone or damaged. Real S3 (moto's server over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from archiver.manifest import DIGESTS_KEY, Manifest, article_doc, article_key, articles, dumps
from archiver.models import ArticleScan, Record
from archiver.plan.scancache import CacheStats, scan_cached
from archiver.settings import ScanSettings
from tests.support.stores import CountingStore, new_s3_store

HOST = "http://zkres1.myzaker.com/img"


@pytest.fixture
def store(aws_env: str) -> Iterator[CountingStore]:
    counting = CountingStore(new_s3_store(aws_env))
    yield counting
    counting.close()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Articles whose manifest was built (the real article_doc, counted, not replaced)."""
    seen: list[str] = []
    real: Callable[..., dict[str, Any]] = articles.article_doc

    def counted(scan: ArticleScan, rows: Any) -> dict[str, Any]:
        seen.append(scan.article)
        return real(scan, rows)

    monkeypatch.setattr(articles, "article_doc", counted)
    return seen


def post(folder: Path, name: str, *images: int, extra: str = "") -> None:
    body = "".join(f'<img src="{HOST}/{n}.jpg">\n' for n in images)
    (folder / name).write_text(f"---\ntitle: {name}\n---\n{body}{extra}", encoding="utf-8")


def archived(n: int, *, route: str = "direct", version: int = 0) -> Record:
    sha = f"{n * 1000 + version:064x}"
    return Record(origin=f"{HOST}/{n}.jpg", kind="image", status="archived",
                  key=f"media/{sha[:2]}/{sha}.jpg", sha256=sha, size=100 + version,
                  content_type="image/jpeg", route=route, urls=(f"{HOST}/{n}.jpg",))


def failed(n: int) -> Record:
    return Record(origin=f"{HOST}/{n}.jpg", kind="image", status="failed",
                  urls=(f"{HOST}/{n}.jpg",), error={"code": "http-404"})


class Site:
    """A folder of articles scanned through the scan cache, and the manifest of one store."""

    def __init__(self, tmp_path: Path, store: CountingStore) -> None:
        self.folder = tmp_path / "posts"
        self.folder.mkdir()
        self.settings = ScanSettings(workers=1, cache_dir=str(tmp_path / "cache"))
        self.store = store
        self.manifest = Manifest(store)
        self.scans: list[ArticleScan] = []

    def write(self) -> int:
        """Scan (through the cache), write the article manifests as a run does, check that
        every one holds what a rebuild from scratch gives; how many were written."""
        stats = CacheStats()
        self.scans = list(scan_cached([str(self.folder)], self.settings, stats))
        self.manifest.invalidate()  # records written meanwhile, as by another process
        written = self.manifest.write_articles(self.scans, stats.keys)
        rows = self.manifest.summaries()
        for scan in self.scans:  # article_doc: the real one, imported before any hook
            assert self.store.inner.get_bytes(article_key(scan.article)) == dumps(
                article_doc(scan, rows)), scan.article
        return written


@pytest.fixture
def site(tmp_path: Path, store: CountingStore) -> Site:
    site = Site(tmp_path, store)
    post(site.folder, "a.md", 1, 2)
    post(site.folder, "b.md", 3)
    post(site.folder, "c.md", 4, 1)
    for n in (1, 2, 3):
        site.manifest.save(archived(n))
    site.manifest.save(failed(4))
    assert site.write() == 3
    return site


def test_unchanged_articles_are_not_rebuilt(site: Site, builds: list[str]) -> None:
    site.store.reset()
    assert site.write() == 0
    assert builds == []
    assert site.store.calls["put"] == 0
    digests = json.loads(site.store.inner.get_bytes(DIGESTS_KEY))
    assert all(len(value.split(" ")) == 2 for value in digests.values())


def test_a_changed_article_is_rewritten(site: Site, builds: list[str]) -> None:
    post(site.folder, "b.md", 3, 2)  # a new reference
    assert site.write() == 1
    assert builds == ["b"]
    builds.clear()
    # New bytes that scan the same: rebuilt and compared, not written.
    post(site.folder, "b.md", 3, 2, extra="more words\n")
    assert site.write() == 0
    assert builds == ["b"]
    builds.clear()
    assert site.write() == 0 and builds == []
    # The same articles (ids and bytes) under another folder: each manifest's path changes.
    site.folder = site.folder.rename(site.folder.with_name("moved"))
    builds.clear()
    assert site.write() == 3
    assert sorted(builds) == ["a", "b", "c"]


@pytest.mark.parametrize("change", ["re-archived", "new route", "failed then archived",
                                    "in a segment"])
def test_a_changed_record_rewrites_the_articles_citing_it(site: Site, builds: list[str],
                                                          change: str) -> None:
    manifest = site.manifest
    later = "2999-01-01T00:00:00+00:00"
    if change == "re-archived":  # the record replaced (marker first), as a repair does
        manifest.records._put(replace(archived(1, version=1), updated_at=later), True)
        expected = {"a", "c"}
    elif change == "new route":
        manifest.records._put(replace(archived(2, route="wayback", version=2),
                                      updated_at=later), True)
        expected = {"a"}
    elif change == "failed then archived":
        manifest.save(archived(4))
        expected = {"c"}
    else:
        with manifest.batched():
            manifest.save(archived(4, route="wayback"))
        manifest.build_index()
        expected = {"c"}
    assert site.write() == len(expected)
    assert set(builds) == expected
    builds.clear()
    assert site.write() == 0 and builds == []


def test_missing_or_damaged_manifests_are_rewritten_without_the_map(site: Site) -> None:
    inner = site.store.inner
    inner.delete([article_key("a")])
    inner.put_bytes(article_key("b"), b'{"article": "b"}', "application/json",
                    overwrite=True)
    inner.delete([DIGESTS_KEY])  # the map gone: compared with the listing
    assert site.write() == 2
    inner.put_bytes(article_key("c"), b"damaged", "application/json", overwrite=True)
    inner.put_bytes(DIGESTS_KEY, b"not json", "application/json", overwrite=True)
    assert site.write() == 3  # a damaged map: every manifest is written again
    assert site.write() == 0


def test_without_the_scan_cache_every_manifest_is_rebuilt(site: Site,
                                                         builds: list[str]) -> None:
    stats = CacheStats()
    scans = list(scan_cached([str(site.folder)], site.settings.model_copy(
        update={"cache": False}), stats))
    assert stats.keys == {}
    assert site.manifest.write_articles(scans, stats.keys) == 0
    assert sorted(builds) == ["a", "b", "c"]
    # The same manifests: their entries keep what they were made of, for the next cached run.
    builds.clear()
    assert site.write() == 0 and builds == []


def test_over_an_unchanged_index_no_row_is_looked_at(site: Site, builds: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    site.manifest.build_index()
    assert site.write() == 0  # the rows are the index's: each entry gets its third digest
    digests = json.loads(site.store.inner.get_bytes(DIGESTS_KEY))
    assert all(len(value.split(" ")) == 3 for value in digests.values())

    def no_rows(*args: object) -> str:
        raise AssertionError("a row was looked at")

    with monkeypatch.context() as patched:
        patched.setattr(articles._Inputs, "of", no_rows)
        site.store.reset()
        assert site.write() == 0
        assert site.store.calls["put"] == 0
    assert builds == []
    # A failed asset archived since, and indexed: the index changes, the third digest no
    # longer matches, and the rows tell which article to rebuild; the others are kept.
    site.manifest.save(archived(4))
    assert site.manifest.build_index().written
    assert site.write() == 1
    assert builds == ["c"]
    # An article changed over the same index: rebuilt by its own digest.
    post(site.folder, "b.md", 3, extra="<p>more</p>")
    builds.clear()
    assert site.write() == 0 and builds == ["b"]  # the same manifest: nothing written
