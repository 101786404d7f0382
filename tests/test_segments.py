"""Records written in segments (many to an S3 request) by the in-process runner: requests per
new asset counted at moto's server, what readers see, old per-asset records folded in, and a
run killed with records unwritten that the next run recovers without fetching again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.drivers.job import archive_paths, build_index
from archiver.manifest import INDEX_KEY, SEGMENTS_PREFIX, WRITERS_PREFIX, Manifest
from archiver.manifest.index import decode_index
from archiver.manifest.segments import segment_key
from archiver.models import Record, asset_id
from archiver.settings import Settings
from archiver.store import open_store
from archiver.verify import verify_store
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.services import counting_moto_s3
from tests.support.stores import CountingStore, new_s3_store

HOST = "zkres1.myzaker.com"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[str, Any]]:
    with counting_moto_s3() as (endpoint, app):
        yield endpoint, app


@pytest.fixture(autouse=True)
def _dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "t"), ("AWS_SECRET_ACCESS_KEY", "t"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)


def articles(folder: Path, origin: OriginServer, n: int, per: int = 5,
             delay: float = 0.0) -> list[str]:
    """``n`` articles of ``per`` images each, every image served by ``origin``."""
    folder.mkdir(parents=True)
    origins = []
    for a in range(n):
        imgs = []
        for i in range(per):
            path = f"/seg/{folder.name}/{a}-{i}.jpg"
            origin.add(path, Response(media.jpeg(16 + a, 8 + i), content_type="image/jpeg",
                                      delay=delay))
            imgs.append(f'<p><img src="http://{HOST}{path}"></p>')
            origins.append(f"http://{HOST}{path}")
        (folder / f"post-{a}.md").write_text(
            f"---\ntitle: post {a}\ndate: 2023-01-0{a % 9 + 1}\n---\n\n" + "\n".join(imgs),
            encoding="utf-8")
    return origins


def settings_for(origin: OriginServer, store_url: str, endpoint: str) -> Settings:
    return Settings().with_overrides(
        fetch={"connect_to": [f"{HOST}:80:127.0.0.1:{origin.port}"],
               "allow_private": ["127.0.0.0/8"], "retries": 0},
        store={"url": store_url, "endpoint_url": endpoint, "region": "us-east-1",
               "addressing_style": "path"})


def new_bucket(endpoint: str) -> str:
    store = new_s3_store(endpoint, prefix="")
    store.close()
    return store.bucket


def test_one_s3_request_per_new_asset_and_readers_see_every_record(
        origin: OriginServer, tmp_path: Path, counted: tuple[str, Any]) -> None:
    endpoint, app = counted
    origins = articles(tmp_path / "posts", origin, 12)  # 60 assets
    settings = settings_for(origin, f"s3://{new_bucket(endpoint)}/arch", endpoint)
    app.counts.clear()
    result = archive_paths([str(tmp_path / "posts")], settings)
    assert result.summary.statuses["archived"] == len(origins) == 60
    seen = dict(app.counts)
    hot = sum(n for key, n in seen.items()
              if key.split(" ", 1)[1] in ("media", "records", "markers"))
    assert seen.get("PUT media") == 60
    assert hot <= 1.2 * 60, seen
    assert not seen.get("PUT markers")  # no change marker per record

    with open_store(settings.store) as store:
        manifest = Manifest(store)
        assert [info.key for info in store.list(WRITERS_PREFIX)] == []  # removed on close
        assert list(store.list("manifest/assets/")) == []  # no per-asset record file
        segments = sorted(i.key for i in store.list(SEGMENTS_PREFIX))
        assert segments
        # The run's own summaries took its segments in as they were written: the index it
        # built holds every row and names every segment, nothing is left to fold.
        rows, held = decode_index(store.get_bytes(INDEX_KEY))
        assert len(rows) == 60 and sorted(segment_key(n) for n in held) == segments
        records = list(manifest.iter_records())
        assert sorted(r.origin for r in records) == sorted(origins)
        assert [r.id for r in records] == sorted(r.id for r in records)
        assert all(r.status == "archived" and r.key for r in records)
        assert set(manifest.statuses().values()) == {"archived"}
        one = manifest.load(asset_id(origins[7]))
        assert one is not None and one.citations[0].article == "post-1"
        report = verify_store(store, manifest)
        assert report.ok == 60 and not report.problems
    # A later process plans from the index alone (one GET and LISTs), every asset archived.
    again = archive_paths([str(tmp_path / "posts")], settings)
    assert again.plan.counts["todo"] == 0
    assert build_index(settings).records == 60
    assert build_index(settings, full=True).records == 60


def test_old_per_asset_records_fold_with_segment_versions(
        tmp_path: Path, counted: tuple[str, Any]) -> None:
    endpoint, _ = counted
    store = new_s3_store(endpoint)
    try:
        manifest = Manifest(store)
        origin_a, origin_b = "http://a.test/1.jpg", "http://a.test/2.jpg"
        # As an older version left it: a per-asset file, indexed.
        manifest.save(Record(origin=origin_a, kind="image", status="failed",
                             error={"code": "http-503"}, created_at="2020-01-01T00:00:00+00:00",
                             updated_at="2020-01-01T00:00:00+00:00"))
        manifest.build_index()
        sha = "ab" * 32
        with manifest.batched(max_records=1):
            manifest.save(Record(origin=origin_a, kind="image", status="archived",
                                 key=f"media/ab/{sha}.jpg", sha256=sha, size=3))
            manifest.save(Record(origin=origin_b, kind="image", status="failed",
                                 error={"code": "dns"}))
        later = Manifest(store)
        assert later.statuses() == {asset_id(origin_a): "archived", asset_id(origin_b): "failed"}
        loaded = later.load(asset_id(origin_a))
        assert loaded is not None and loaded.key == f"media/ab/{sha}.jpg"
        assert loaded.created_at.startswith("2020")  # first seen by the old record
        # A worker's failure afterwards does not make it worse, wherever it is written.
        later.save(Record(origin=origin_a, kind="image", status="failed",
                          error={"code": "http-500"}))
        assert Manifest(store).statuses()[asset_id(origin_a)] == "archived"
        assert {r.origin: r.status for r in Manifest(store).iter_records()} == {
            origin_a: "archived", origin_b: "failed"}
        stats = Manifest(store).build_index(full=True)
        assert (stats.records, stats.archived, stats.failed) == (2, 1, 1)
    finally:
        store.close()


def test_loading_one_record_reads_no_other_record(counted: tuple[str, Any]) -> None:
    endpoint, _ = counted
    inner = new_s3_store(endpoint)
    store = CountingStore(inner)
    try:
        writer = Manifest(store)
        files = [Record(origin=f"http://a.test/f{n}.jpg", kind="image", status="failed",
                        error={"code": "dns"}) for n in range(4)]
        for record in files:
            writer.save(record)  # per-asset files, no index built
        with writer.batched():
            writer.save(Record(origin="http://a.test/f1.jpg", kind="image", status="archived",
                               key="media/ab/" + "ab" * 32 + ".jpg", sha256="ab" * 32, size=1))
        store.reset()
        loaded = Manifest(store).load(files[1].id)
        assert loaded is not None and loaded.status == "archived"
        # Its own file, the index (absent) and the one segment: not the other records.
        assert [key for key in store.gets if key.startswith("manifest/assets/")] == [
            Manifest.record_key(files[1].id)]
        assert store.calls["get"] == 3
    finally:
        inner.close()


CHILD = """
import json, sys
from archiver.drivers.job import archive_paths
from archiver.manifest import segments
from archiver.settings import Settings
# A segment is written at 5 records, never because a record waited: the last 2 stay staged
# however long the loaded machine takes to get the test to its kill.
segments.MAX_RECORDS, segments.LINGER = 5, 3600.0
settings = Settings().with_overrides(**json.loads(sys.argv[2]))
archive_paths([sys.argv[1]], settings,
              on_record=lambda r: print(json.dumps([r.origin, r.status]), flush=True))
"""


@pytest.mark.faults
def test_a_killed_run_loses_nothing_reported_and_its_stored_objects_are_not_fetched_again(
        origin: OriginServer, tmp_path: Path, counted: tuple[str, Any]) -> None:
    endpoint, _ = counted
    posts = tmp_path / "posts"
    origins = articles(posts, origin, 3, per=4)  # 12 assets
    # These hang until the test lets them go, after the kill: the child's timeouts and
    # deadline are far longer than any wait here, so no timeout fails them and no answer
    # archives them however slowly a loaded machine gets the test to its kill.
    slow = set(origins[7:])
    hold = threading.Event()
    for o in slow:
        path = o.split(HOST, 1)[1]
        response = origin.routes[path]
        assert isinstance(response, Response)
        response.hold = hold
    bucket = new_bucket(endpoint)
    settings = settings_for(origin, f"s3://{bucket}/arch", endpoint)
    overrides = {"fetch": {"connect_to": settings.fetch.connect_to,
                           "allow_private": ["127.0.0.0/8"], "retries": 0,
                           "read_timeout": 3600, "deadline": 3600},
                 "store": {"url": settings.store.url, "endpoint_url": endpoint,
                           "region": "us-east-1", "addressing_style": "path"},
                 "runner": {"concurrency": 2}}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(posts), json.dumps(overrides)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
        reader.start()
        with open_store(settings.store) as store:
            deadline = time.monotonic() + 90
            # 7 objects stored, one segment of 5 records written and reported, 2 records
            # staged, both of the child's 2 slots held by the origin: nothing more can happen.
            while time.monotonic() < deadline:
                if (len(list(store.list("media/"))) >= 7
                        and len(list(store.list(SEGMENTS_PREFIX)))
                        and sum(line.startswith("[") for line in list(lines)) >= 5
                        and sum(origin.hits[o.split(HOST, 1)[1]] for o in slow) >= 2):
                    break
                time.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            reader.join(timeout=30)
            proc.stdout.close()
            assert proc.returncode == -signal.SIGKILL
            # Only now, with the child dead, do the held requests go on (to a closed socket).
            hold.set()
            out = "".join(lines)
            reported = {json.loads(line)[0] for line in out.splitlines() if line.startswith("[")}
            assert len(reported) == 5, out
            stored = {info.key for info in store.list("media/")}
            assert len(stored) == 7
            assert len(list(store.list(WRITERS_PREFIX))) == 1  # the dead run's marker

            for o in slow:
                response = origin.routes[o.split(HOST, 1)[1]]
                assert isinstance(response, Response)
                response.hold = None
            origin.hits.clear()
            result = archive_paths([str(posts)], settings)
            assert result.summary.statuses["archived"] == 12 - len(reported)
            manifest = Manifest(store)
            records = {r.origin: r for r in manifest.iter_records()}
            assert set(records) == set(origins)
            assert all(r.status == "archived" for r in records.values())
            assert reported <= set(records)
            recovered = [r for r in records.values() if r.extra.get("recovered")]
            assert len(recovered) == 2 and all(r.key in stored for r in recovered)
            assert all(r.width and r.height for r in recovered)  # from the object's metadata
            # No object whose bytes were stored was fetched again: only the 5 never stored.
            fetched = {f"http://{HOST}{path}" for path in origin.hits}
            assert fetched == set(origins) - reported - {r.origin for r in recovered}
            assert len(fetched) == 5
            assert list(store.list(WRITERS_PREFIX)) == []  # recovered, forgotten
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        hold.set()
