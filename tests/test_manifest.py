"""The manifest over both stores: records that never get worse, the compacted index that makes
planning one GET and one LIST, per-article manifests with hostile ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import ManifestError
from archiver.manifest import (
    ARTICLES_PREFIX,
    CHANGED_PREFIX,
    DIGESTS_KEY,
    INDEX_KEY,
    MAX_ATTEMPTS,
    Manifest,
    article_doc,
    article_key,
    dumps,
)
from archiver.models import ArticleScan, Attempt, Citation, Record, Reference, Skipped, asset_id
from archiver.store.base import Store
from archiver.store.keys import check_key
from tests.support.stores import CountingStore, new_local_store, new_s3_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CountingStore]:
    if request.param == "local":
        inner: Store = new_local_store(tmp_path)
    else:
        inner = new_s3_store(request.getfixturevalue("aws_env"))
    counting = CountingStore(inner)
    yield counting
    counting.close()


def origin(n: int) -> str:
    return f"http://zkres1.myzaker.com/img/{n}.jpg"


def archived(n: int, article: str = "posts/a.md", **kw: Any) -> Record:
    values: dict[str, Any] = {
        "origin": origin(n), "kind": "image", "status": "archived",
        "key": f"media/{n:02x}/{n:064x}.jpg", "sha256": f"{n:064x}", "size": 100 + n,
        "content_type": "image/jpeg", "route": "direct", "urls": (origin(n),),
        "citations": (Citation(article, ("front-matter:headimg",)),),
        "attempts": (Attempt("direct", origin(n), 200),),
    }
    values.update(kw)
    return Record(**values)


def failed(n: int, article: str = "posts/b.md", code: str = "http-404", **kw: Any) -> Record:
    values: dict[str, Any] = {
        "origin": origin(n), "kind": "image", "status": "failed", "http_status": 404,
        "error": {"code": code, "message": "nope"}, "urls": (f"https://cors.zfour.workers.dev/?{origin(n)}",),
        "citations": (Citation(article, ("img[src]",)),),
        "attempts": (Attempt("direct", origin(n), 404, {"code": code}),),
    }
    values.update(kw)
    return Record(**values)


def test_save_and_load_round_trip_as_compact_sorted_utf8(store: CountingStore) -> None:
    manifest = Manifest(store)
    record = archived(1, origin="http://例子.com/图.jpg", key="media/01/" + "1" * 64 + ".jpg")
    stored = manifest.save(record)
    assert stored.created_at and stored.updated_at
    assert manifest.load(record.id) == stored
    raw = store.get_bytes(Manifest.record_key(record.id))
    assert "图".encode() in raw  # UTF-8, not \\u escapes
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False).encode()
    assert manifest.load(asset_id("http://never/")) is None
    with pytest.raises(ManifestError):
        Manifest.record_key("../../x")


def test_archived_is_never_replaced_by_failed_or_skipped(store: CountingStore) -> None:
    manifest = Manifest(store)
    first = manifest.save(archived(2))
    after_failed = manifest.save(failed(2, article="posts/c.md"))
    assert after_failed.status == "archived"
    assert (after_failed.key, after_failed.sha256, after_failed.size) == (
        first.key, first.sha256, first.size)
    assert after_failed.error is None
    # What the failure knew is merged in: its citation, URL and attempt.
    assert {c.article for c in after_failed.citations} == {"posts/a.md", "posts/c.md"}
    assert set(after_failed.urls) == set(first.urls) | set(failed(2).urls)
    assert len(after_failed.attempts) == 2
    after_skipped = manifest.save(failed(2, status="skipped"))
    assert after_skipped.status == "archived"
    assert manifest.load(first.id) == after_skipped


def test_fresh_save_is_one_create_only_write(store: CountingStore) -> None:
    manifest = Manifest(store)
    store.reset()
    saved = manifest.save(archived(4), fresh=True)
    assert store.calls == {"put": 2}  # its change marker, then the record: no read
    assert manifest.load(saved.id) == saved


def test_fresh_save_over_an_existing_record_still_merges(store: CountingStore) -> None:
    """A plan can be stale (another worker archived the asset meanwhile): the create-only
    write fails and the archived record survives a fresh failure."""
    manifest = Manifest(store)
    first = manifest.save(archived(5))
    after = manifest.save(failed(5, article="posts/d.md"), fresh=True)
    assert after.status == "archived" and after.sha256 == first.sha256
    assert {c.article for c in after.citations} == {"posts/a.md", "posts/d.md"}
    assert manifest.load(first.id) == after


def test_failed_is_replaced_by_archived_and_by_a_newer_failure(store: CountingStore) -> None:
    manifest = Manifest(store)
    first = manifest.save(failed(3, code="http-503"))
    newer = manifest.save(failed(3, code="not-media"))
    assert newer.error == {"code": "not-media", "message": "nope"}
    assert newer.created_at == first.created_at
    done = manifest.save(archived(3))
    assert done.status == "archived" and done.error is None and done.key
    assert {c.article for c in done.citations} == {"posts/a.md", "posts/b.md"}
    assert [a.error["code"] if a.error else None for a in done.attempts] == [
        "http-503", "not-media", None]


def test_attempts_are_bounded_and_not_duplicated(store: CountingStore) -> None:
    manifest = Manifest(store)
    for i in range(30):
        manifest.save(failed(4, attempts=(Attempt("direct", origin(4), 503, {"n": i}),)))
    record = manifest.load(asset_id(origin(4)))
    assert record is not None
    assert len(record.attempts) == MAX_ATTEMPTS
    assert record.attempts[-1].error == {"n": 29}
    # A record built from the stored one (as a re-run does) adds no copies.
    again = manifest.save(record)
    assert again.attempts == record.attempts


def test_an_unchanged_record_is_not_rewritten(store: CountingStore) -> None:
    manifest = Manifest(store)
    stored = manifest.save(archived(5))
    store.reset()
    from dataclasses import replace

    again = manifest.save(replace(stored, updated_at="2031-01-01T00:00:00+00:00"))
    assert again == stored
    assert store.calls["put"] == 0


def test_a_racing_writer_that_overwrites_is_repaired(tmp_path: Path) -> None:
    """Another saver writes a stale ``failed`` right after our write: the read-back sees it,
    merges again, and ``archived`` with both citations is what stays."""

    class Interfering(CountingStore):
        fired = False

        def put_bytes(self, key: str, data: bytes, content_type: str,
                      metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool:
            done = super().put_bytes(key, data, content_type, metadata, overwrite)
            if not self.fired and key.startswith("manifest/assets/"):
                self.fired = True
                stale = failed(6, article="posts/racer.md")
                self.inner.put_bytes(key, json.dumps(stale.to_dict()).encode(),
                                     "application/json", overwrite=True)
            return done

    store = Interfering(new_local_store(tmp_path))
    manifest = Manifest(store)
    result = manifest.save(archived(6))
    assert result.status == "archived"
    stored = manifest.load(result.id)
    assert stored is not None and stored.status == "archived"
    assert {c.article for c in stored.citations} == {"posts/a.md", "posts/racer.md"}


def test_statuses_read_the_index_and_only_changed_records(store: CountingStore) -> None:
    manifest = Manifest(store)
    for n in range(6):
        manifest.save(archived(n) if n % 2 == 0 else failed(n))
    store.reset()
    # No index yet: every record is listed and read once (and the change markers and the
    # record segments listed).
    assert manifest.statuses() == {asset_id(origin(n)): "archived" if n % 2 == 0 else "failed"
                                   for n in range(6)}
    assert store.calls["get"] == 1 + 6 and store.calls["list"] == 3

    stats = manifest.build_index()
    assert (stats.records, stats.archived, stats.failed, stats.skipped) == (6, 3, 3, 0)
    assert stats.written

    store.reset()
    planner = Manifest(store)  # a later run, e.g. another process
    assert planner.statuses()[asset_id(origin(1))] == "failed"
    assert store.gets == [INDEX_KEY]  # one GET, two LISTs (markers, segments), no record
    assert store.calls["list"] == 2

    manifest.save(archived(1))  # a retry succeeded
    manifest.save(archived(9))  # a new asset
    store.reset()
    statuses = manifest.statuses()
    assert statuses[asset_id(origin(1))] == "archived"
    assert statuses[asset_id(origin(9))] == "archived"
    assert sorted(store.gets) == sorted([INDEX_KEY, Manifest.record_key(asset_id(origin(1))),
                                         Manifest.record_key(asset_id(origin(9)))])


def test_planning_reads_change_markers_not_every_record(store: CountingStore) -> None:
    writer = Manifest(store)
    for n in range(5):
        writer.save(archived(n), fresh=True)
    writer.build_index()
    assert list(store.list(CHANGED_PREFIX)) == []  # consumed by the build
    other = Manifest(store)  # a worker elsewhere records two more assets
    other.save(failed(7), fresh=True)
    other.save(archived(2, article="posts/z.md"))  # a new citation: a changed record
    store.reset()
    statuses = Manifest(store).statuses()
    assert statuses[asset_id(origin(7))] == "failed" and len(statuses) == 6
    # The index, then only the two records that changed; records themselves are not listed.
    assert sorted(store.gets) == sorted([INDEX_KEY, Manifest.record_key(asset_id(origin(7))),
                                         Manifest.record_key(asset_id(origin(2)))])
    assert store.calls["list"] == 2  # the change markers and the segments


def test_a_full_build_repairs_an_index_that_lost_a_change(store: CountingStore) -> None:
    manifest = Manifest(store)
    for n in range(3):
        manifest.save(archived(n))
    manifest.build_index()
    # As if two builds raced: the index lost a row and no marker is left to tell.
    rows = store.get_bytes(INDEX_KEY).splitlines(keepends=True)
    store.put_bytes(INDEX_KEY, b"".join(rows[1:]), "application/x-ndjson", overwrite=True)
    assert len(Manifest(store).statuses()) == 2
    stats = Manifest(store).build_index(full=True)
    assert (stats.records, stats.reread, stats.written) == (3, 1, True)
    assert len(Manifest(store).statuses()) == 3


def test_summaries_are_cached_until_a_save_or_invalidate(store: CountingStore) -> None:
    manifest = Manifest(store)
    manifest.save(archived(1))
    manifest.build_index()
    store.reset()
    manifest.statuses()
    manifest.summaries()
    manifest.build_index()  # nothing changed: no request at all, nothing written
    assert sum(store.calls.values()) == 0
    other = Manifest(store)
    other.save(failed(2))  # another process records an asset
    assert asset_id(origin(2)) not in manifest.statuses()
    manifest.invalidate()
    assert manifest.statuses()[asset_id(origin(2))] == "failed"
    manifest.save(archived(3))  # our own save drops the cache at once
    assert manifest.statuses()[asset_id(origin(3))] == "archived"


def test_build_index_is_incremental_and_rows_are_complete(store: CountingStore) -> None:
    manifest = Manifest(store)
    for n in range(4):
        manifest.save(archived(n))
    first = manifest.build_index()
    assert (first.records, first.reread, first.written) == (4, 4, True)
    again = manifest.build_index()
    assert (again.records, again.reread, again.written) == (4, 0, False)
    manifest.save(failed(7))
    third = manifest.build_index()
    assert (third.records, third.reread, third.failed) == (5, 1, 1)

    rows = [json.loads(line) for line in store.get_bytes(INDEX_KEY).splitlines()]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    row = next(r for r in rows if r["id"] == asset_id(origin(2)))
    assert {k: row[k] for k in ("status", "origin", "kind", "key", "sha256", "size",
                                "content_type", "error")} == {
        "status": "archived", "origin": origin(2), "kind": "image",
        "key": f"media/02/{2:064x}.jpg", "sha256": f"{2:064x}", "size": 102,
        "content_type": "image/jpeg", "error": None}
    assert row["updated_at"] and row["record_version"] and row["record_size"] > 0
    assert next(r for r in rows if r["status"] == "failed")["error"] == "http-404"


def test_damaged_records_and_index_rows_do_not_break_planning(store: CountingStore) -> None:
    manifest = Manifest(store)
    manifest.save(archived(1))
    manifest.build_index()
    bad_id = asset_id(origin(2))
    store.put_bytes(Manifest.record_key(bad_id), b"{not json", "application/json")
    store.put_bytes(INDEX_KEY, store.get_bytes(INDEX_KEY) + b"garbage\n",
                    "application/x-ndjson", overwrite=True)
    with pytest.raises(ManifestError):
        manifest.load(bad_id)
    assert manifest.statuses() == {asset_id(origin(1)): "archived"}
    assert [r.id for r in manifest.iter_records()] == [asset_id(origin(1))]


def test_iter_records_yields_every_record_in_id_order(store: CountingStore) -> None:
    manifest = Manifest(store)
    for n in range(5):
        manifest.save(archived(n))
    ids = [r.id for r in manifest.iter_records()]
    assert ids == sorted(asset_id(origin(n)) for n in range(5))


HOSTILE = ["posts/ok.md", "../../etc/passwd", "/abs/post.md", "a//b.md", ".hidden", "..",
           "sub/../../x.md", "a\\b.md", "题/文章.md", "x" * 400, "%2E%2E", "a/"]


def scan(article: str, n: int) -> ArticleScan:
    refs = (
        Reference(article, ("front-matter:headimg",), "image",
                  f"https://cors.zfour.workers.dev/?{origin(n)}", origin(n),
                  proxy="https://cors.zfour.workers.dev/?"),
        Reference(article, ("img[src]",), "gif", origin(100 + n), origin(100 + n)),
    )
    return ArticleScan(article, f"/site/{article}", refs,
                       (Skipped(article, "img[src]", "data:,", "data-url"),), (), "Title")


def test_article_manifests_map_references_to_records(store: CountingStore) -> None:
    manifest = Manifest(store)
    manifest.save(archived(1))
    manifest.save(failed(101, code="not-media"))
    assert manifest.write_articles([scan("posts/one.md", 1)]) == 1
    doc = json.loads(store.get_bytes(article_key("posts/one.md")))
    assert doc["article"] == "posts/one.md" and doc["title"] == "Title"
    first, second = doc["references"]
    assert first["status"] == "archived" and first["key"] == f"media/01/{1:064x}.jpg"
    assert first["asset"] == asset_id(origin(1)) and first["proxy"]
    assert second["status"] == "failed" and second["error"] == "not-media"
    assert doc["counts"] == {"archived": 1, "failed": 1}
    assert doc["skipped"] == [{"where": "img[src]", "value": "data:,", "reason": "data-url"}]

    # Unchanged articles are not rewritten; a changed record rewrites its article only.
    assert manifest.write_articles([scan("posts/one.md", 1), scan("posts/two.md", 5)]) == 1
    assert manifest.write_articles([scan("posts/one.md", 1), scan("posts/two.md", 5)]) == 0
    manifest.save(archived(101))
    assert manifest.write_articles([scan("posts/one.md", 1), scan("posts/two.md", 5)]) == 1
    doc = json.loads(store.get_bytes(article_key("posts/one.md")))
    assert doc["counts"] == {"archived": 2}
    pending = json.loads(store.get_bytes(article_key("posts/two.md")))
    assert pending["counts"] == {"pending": 2}


def test_article_changes_are_found_without_listing_the_articles(store: CountingStore) -> None:
    manifest = Manifest(store)
    manifest.write_articles([scan("posts/one.md", 1), scan("posts/two.md", 2)])
    manifest.summaries()  # cached, as after planning
    store.reset()
    assert manifest.write_articles([scan("posts/one.md", 1), scan("posts/two.md", 2)]) == 0
    assert store.calls == {"get": 1}  # the digest map, and nothing else
    # A damaged map: every article manifest is written again, then a good map.
    store.inner.put_bytes(DIGESTS_KEY, b"not json", "application/json", overwrite=True)
    assert manifest.write_articles([scan("posts/one.md", 1)]) == 1
    assert manifest.write_articles([scan("posts/one.md", 1)]) == 0


def test_archives_from_before_the_digest_map_are_compared_by_listing(
        store: CountingStore) -> None:
    manifest = Manifest(store)
    old = scan("posts/old.md", 3)
    store.put_bytes(article_key(old.article), dumps(article_doc(old, manifest.summaries())),
                    "application/json", overwrite=True)
    assert not store.exists(DIGESTS_KEY)
    assert manifest.write_articles([old, scan("posts/new.md", 4)]) == 1  # only the new one
    assert store.exists(DIGESTS_KEY)


def test_hostile_article_ids_stay_under_articles_and_distinct(store: CountingStore,
                                                               tmp_path: Path) -> None:
    manifest = Manifest(store)
    assert manifest.write_articles([scan(a, i) for i, a in enumerate(HOSTILE)]) == len(HOSTILE)
    keys = {article_key(a) for a in HOSTILE}
    assert len(keys) == len(HOSTILE)
    for key in keys:
        assert check_key(key).startswith(ARTICLES_PREFIX)
    listed = {info.key for info in store.list("")}
    assert keys <= listed
    assert all(k.startswith(("manifest/articles/", "manifest/assets/")) or k == DIGESTS_KEY
               for k in listed)
    for article in HOSTILE:
        assert json.loads(store.get_bytes(article_key(article)))["article"] == article
    # Nothing escaped the local store's root (the S3 bucket has no outside).
    outside = [p for p in tmp_path.rglob("*") if p.is_file()
               and not p.is_relative_to(tmp_path / "archive")]
    assert outside == []


def test_records_on_s3_are_listed_one_prefix_per_hex_digit_at_once(aws_env: str) -> None:
    s3 = new_s3_store(aws_env)
    assert s3.parallel_list
    manifest = Manifest(s3)
    saved = {manifest.save(archived(n) if n % 3 else failed(n), fresh=True).id
             for n in range(40)}
    assert len({asset[0] for asset in saved}) > 8  # the ids really spread over the prefixes
    # A stray object under the prefix that is not a record is ignored, as in one listing.
    s3.put_bytes("manifest/assets/zz-not-a-record.json", b"{}", "application/json")
    statuses = Manifest(s3).statuses()
    assert set(statuses) == saved
    assert statuses == {r.id: r.status for r in manifest.iter_records()}
    s3.close()


def test_the_index_is_read_a_block_at_a_time_to_the_same_rows(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from archiver.manifest import INDEX_KEY, index
    from archiver.manifest.index import decode_index

    manifest = Manifest(store)
    with manifest.batched():  # rows in segments, named by the index's header
        for n in range(1, 12):
            manifest.save(archived(n) if n % 2 else failed(n), fresh=True)
    for n in range(12, 20):  # and rows of per-asset record files
        manifest.save(archived(n), fresh=True)
    manifest.build_index()
    data = store.get_bytes(INDEX_KEY)
    whole, names = decode_index(data)
    assert names and len(whole) == 19
    for block in (1, 7, 300, 1 << 22):  # lines cut anywhere between two reads
        monkeypatch.setattr(index, "_BLOCK", block)
        fresh = Manifest(store)
        rows = fresh.summaries()
        assert {a: rows[a] for a in rows} == {a: whole[a] for a in whole}
        assert fresh.build_index().written is False  # the same bytes, seen as the same
        assert store.get_bytes(INDEX_KEY) == data
        assert fresh.load(asset_id(origin(3))) == manifest.load(asset_id(origin(3)))
        # Without summaries, where versions are comes from the index read the same way.
        assert Manifest(store).load(asset_id(origin(3))) == manifest.load(asset_id(origin(3)))


def test_the_manifest_json_is_json_dumps_sorted_compact_utf8() -> None:
    """``dumps`` (one shared encoder, no circular-reference check) writes what json.dumps
    with the manifest's options writes, to the byte."""
    from archiver.manifest.records import dumps

    values: list[Any] = [
        {"b": 1, "a": [1.5, 1e16, -0.0, None, True], "é": "中文 \u2028 \x00 \"q\""},
        {"z": {"y": {"x": [{}, [], ""]}}, "n": 2**70, "s": "a\\b/c"},
        [], "plain", 3,
        Record(origin="http://example.com/é.jpg", kind="image", status="archived",
               citations=(Citation("post", ("img[src]",), "2024-01-01T00:00:00Z"),),
               attempts=(Attempt(url="http://example.com/é.jpg", route="direct", status=200,
                                 at="2024-01-01T00:00:00.000+00:00", elapsed=0.05),)
               ).to_dict(),
    ]
    for value in values:
        want = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert dumps(value) == want.encode()
