"""Article manifests written during an S3 run (manifest/early.py): each is the manifest the end
of the run would write, none is written twice, the map of digests takes them in, and one
written before a crash is set right by the next run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from archiver.drivers import job
from archiver.drivers.job import Sources, _plan, archive_paths
from archiver.manifest import DIGESTS_KEY, Manifest, article_doc, article_key, dumps
from archiver.manifest.articles import write_articles
from archiver.manifest.early import EarlyArticles
from archiver.models import ArticleScan, Record
from archiver.store import open_store
from archiver.store.base import Store
from tests.support.origin import OriginServer
from tests.test_segments import _dummy_aws, articles, counted, new_bucket, settings_for

__all__ = ["_dummy_aws", "counted"]  # the fixtures, shared with test_segments




@contextmanager
def planned(origin: OriginServer, posts: Path, n: int, endpoint: str
            ) -> Iterator[tuple[Store, Manifest, list[ArticleScan], set[str], Sources]]:
    """``n`` articles of five assets on a new bucket, planned: the store, its manifest, the
    scans, the ids of the assets to archive and the scans' sources."""
    articles(posts, origin, n)
    settings = settings_for(origin, f"s3://{new_bucket(endpoint)}/arch", endpoint)
    with open_store(settings.store) as store:
        manifest = Manifest(store)
        scans, plan, sources, _ = _plan([str(posts)], settings, manifest)
        yield store, manifest, scans, {asset.id for asset in plan.todo}, sources


def test_an_s3_run_writes_each_article_manifest_once_as_the_end_would(
        origin: OriginServer, tmp_path: Path, counted: tuple[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, app = counted
    articles(tmp_path / "posts", origin, 12, delay=0.05)
    settings = settings_for(origin, f"s3://{new_bucket(endpoint)}/arch", endpoint)
    early: list[dict[str, str]] = []
    finish = EarlyArticles.finish

    def kept(self: EarlyArticles) -> dict[str, str]:
        early.append(finish(self))
        return early[-1]

    monkeypatch.setattr(job.EarlyArticles, "finish", kept)
    app.counts.clear()
    result = archive_paths([str(tmp_path / "posts")], settings)
    assert result.summary.statuses["archived"] == 60
    assert app.counts["PUT articles"] == 12  # each once, early or at the end
    assert len(early) == 1 and len(early[0]) == 12  # every article's assets were planned

    with open_store(settings.store) as store:
        manifest = Manifest(store)
        scans, _, sources, _ = _plan([str(tmp_path / "posts")], settings, manifest)
        rows = manifest.summaries()
        digests = json.loads(store.get_bytes(DIGESTS_KEY))
        for scan in scans:
            key = article_key(scan.article)
            body = store.get_bytes(key)
            assert body == dumps(article_doc(scan, rows))  # what the end phase builds
            assert digests[key].split(" ")[:2] == early[0][key].split(" ")
            assert json.loads(body)["counts"] == {"archived": 5}
        app.counts.clear()
        assert manifest.write_articles(scans, sources) == 0  # nothing left to write
        assert app.counts["PUT articles"] == 0


def test_a_manifest_written_early_and_no_longer_current_is_written_again(
        origin: OriginServer, tmp_path: Path, counted: tuple[str, Any]) -> None:
    """The end of the run takes an early manifest only while what it was made of holds (a
    manifest written before a crash, the map not yet, is rewritten by the next run)."""
    endpoint, app = counted
    with planned(origin, tmp_path / "posts", 3, endpoint) as (store, manifest, scans, todo,
                                                               sources):
        first, key = scans[0], article_key(scans[0].article)

        def early() -> dict[str, str]:
            with EarlyArticles(store, manifest.summaries, scans, sources, todo) as writer:
                for ref in first.references:  # its records "durable": written at once
                    writer.recorded(_record_of(ref.origin))
                return writer.finish()

        written = early()
        assert list(written) == [key]
        assert json.loads(store.get_bytes(key))["counts"] == {"pending": 5}
        for ref in first.references:  # the records change after it was written
            manifest.save(_record_of(ref.origin))
        rows = manifest.summaries()
        assert write_articles(store, scans, rows, sources=sources, written=written) == 3
        for scan in scans:
            assert store.get_bytes(article_key(scan.article)) == dumps(article_doc(scan, rows))
        assert json.loads(store.get_bytes(key))["counts"] == {"failed": 5}

        # Written early from the rows as they are: entered in the map, not written again.
        manifest.save(_record_of(scans[1].references[0].origin))
        written = early()
        rows = manifest.summaries()
        app.counts.clear()
        assert write_articles(store, scans, rows, sources=sources, written=written) == 2
        assert app.counts["PUT articles"] == 1  # scans[1]'s, changed by the record saved
        digests = json.loads(store.get_bytes(DIGESTS_KEY))
        assert digests[key].split(" ")[:2] == written[key].split(" ")
        for scan in scans:
            assert store.get_bytes(article_key(scan.article)) == dumps(article_doc(scan, rows))
        assert write_articles(store, scans, rows, sources=sources) == 0


def test_articles_named_twice_or_without_planned_assets_are_left_to_the_end(
        origin: OriginServer, tmp_path: Path, counted: tuple[str, Any]) -> None:
    with planned(origin, tmp_path / "posts", 2, counted[0]) as (store, manifest, scans, todo,
                                                                sources):
        twice = [*scans, scans[0]]
        with EarlyArticles(store, manifest.summaries, twice, sources, todo) as writer:
            for scan in scans:
                for ref in scan.references:
                    writer.recorded(_record_of(ref.origin))
            assert list(writer.finish()) == [article_key(scans[1].article)]
        with EarlyArticles(store, manifest.summaries, scans, sources, set()) as writer:
            for ref in scans[1].references:
                writer.recorded(_record_of(ref.origin))
            assert writer.finish() == {}


def _record_of(origin: str) -> Record:
    return Record(origin=origin, kind="image", status="failed")
