"""The broker path end to end: two real ``celery worker`` processes on a real redis-server,
moto's S3 server as the store, the local origin server playing every media host."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from archiver.drivers.enqueue import enqueue_plan, wait_for
from archiver.drivers.job import plan_paths
from archiver.manifest import Manifest
from archiver.models import Asset
from archiver.settings import Settings, load_settings
from archiver.store import open_store
from archiver.store.s3 import S3Store
from tests.conftest import FIXTURES
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.workers import (
    Workers,
    run_cli,
    start_cli,
    worker_env,
    workers,  # noqa: F401  (the module-scoped fixture)
    write_article,
)

STORE = "s3://celery-flow/archive"


@dataclass
class Cluster:
    env: dict[str, str]
    settings: Settings
    workers: Workers


@pytest.fixture(scope="module")
def cluster(workers: Workers, redis_url: str, s3_endpoint: str,  # noqa: F811
            origin_server: OriginServer) -> Cluster:
    env = worker_env(
        redis_url, s3_endpoint, STORE, origin_server,
        ARCHIVER_FETCH__PER_HOST_CONCURRENCY="2",
        ARCHIVER_FETCH__RETRIES="1",
        ARCHIVER_FETCH__BACKOFF_BASE="0.1",
        ARCHIVER_CELERY__RETRY_BACKOFF="0.2",
        ARCHIVER_CELERY__RETRY_BACKOFF_MAX="1",
        ARCHIVER_CELERY__CLAIM_TTL="4",
    )
    settings = load_settings(environ=env)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            mp.setenv(name, env[name])
        with open_store(settings.store) as store:
            assert isinstance(store, S3Store)
            store.ensure_bucket()
    redis.Redis.from_url(redis_url).flushdb()
    # Two separate worker processes, as on two machines.
    workers.start("w1", env, pool="threads", concurrency=4)
    workers.start("w2", env, pool="threads", concurrency=4)
    return Cluster(env, settings, workers)


@pytest.fixture(autouse=True)
def _logs(cluster: Cluster, aws_env: str) -> Iterator[None]:
    yield
    cluster.workers.print_logs()


def _serve(origin: OriginServer, assets: list[Asset], delay: float = 0.0) -> dict[str, bytes]:
    """A distinct JPEG per asset at its origin path; returns path -> body."""
    bodies = {}
    for i, asset in enumerate(assets):
        path = urlsplit(asset.origin).path
        body = media.gif(frames=2) if asset.kind == "gif" else media.jpeg(
            color=(i * 7 % 256, 80, 200 - i))
        if asset.kind == "gif":
            body = media.gif(width=20 + i, frames=2)
        bodies[path] = body
        origin.add(path, Response(body=body, content_type=None, delay=delay))
    return bodies


def _media_shas(settings: Settings) -> set[str]:
    with open_store(settings.store) as store:
        return {info.key.rsplit("/", 1)[-1].split(".")[0] for info in store.list("media/")}


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_enqueue_wait_archives_every_asset_once(cluster: Cluster, origin: OriginServer) -> None:
    _scans, plan = plan_paths([str(FIXTURES / "celery")], cluster.settings)
    bodies = _serve(origin, list(plan.assets), delay=0.05)

    done = run_cli(["enqueue", str(FIXTURES / "celery"), "--wait", "--timeout", "60",
                    "--format", "jsonl"], cluster.env)
    assert done.returncode == 0, done.stderr
    events = {e["event"]: e for e in _lines(done.stdout)}
    assert events["enqueued"]["found"] == 9
    assert events["enqueued"]["enqueued"] == 9
    assert events["enqueued"]["queues"] == {"media": 9}
    assert events["summary"]["archived"] == 9 and events["summary"]["failed"] == 0
    assert events["summary"]["recovered"] == 0  # none came from the Wayback Machine

    # Each origin URL requested once, directly (no proxy needed).
    assert {path: origin.hits[path] for path in bodies} == dict.fromkeys(bodies, 1)
    assert not origin.proxy_hits
    # The manifest is complete: a record per asset, archived, with the right digest.
    with open_store(cluster.settings.store) as store:
        records = {asset.id: Manifest(store).load(asset.id) for asset in plan.assets}
    for asset in plan.assets:
        record = records[asset.id]
        assert record is not None and record.status == "archived"
        assert record.sha256 == hashlib.sha256(bodies[urlsplit(asset.origin).path]).hexdigest()
    assert {hashlib.sha256(b).hexdigest() for b in bodies.values()} <= _media_shas(
        cluster.settings)

    # A second run finds everything archived and sends nothing.
    again = run_cli(["enqueue", str(FIXTURES / "celery"), "--format", "jsonl"], cluster.env)
    assert again.returncode == 0, again.stderr
    event = _lines(again.stdout)[0]
    assert (event["found"], event["already_archived"], event["enqueued"]) == (9, 9, 0)

    status = run_cli(["status", "--format", "jsonl"], cluster.env)
    assert status.returncode == 0, status.stderr
    snap = _lines(status.stdout)[0]
    assert snap["queues"] == {"media": 0, "video": 0}
    assert snap["manifest"]["archived"] >= 9  # type: ignore[index]


def test_two_enqueuers_at_once_fetch_and_store_each_asset_once(
        cluster: Cluster, origin: OriginServer, tmp_path: Path) -> None:
    urls = [f"http://zkres{1 + i % 2}.myzaker.com/twice/p{i}_1024.jpg" for i in range(12)]
    write_article(tmp_path, "twice-a", urls[:8])
    write_article(tmp_path, "twice-b", urls[4:])
    _scans, plan = plan_paths([str(tmp_path)], cluster.settings)
    assert len(plan.todo) == 12
    bodies = _serve(origin, list(plan.assets), delay=0.2)

    args = ["enqueue", str(tmp_path), "--wait", "--timeout", "60", "--format", "jsonl"]
    runs = [start_cli(args, cluster.env), start_cli(args, cluster.env)]
    outputs = [run.communicate(timeout=90) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        summary = _lines(out)[-1]
        assert summary["event"] == "summary"
        # Whatever each enqueuer sent ended archived (by it or by the other's worker).
        assert summary["failed"] == 0 and summary["pending"] == 0

    assert {path: origin.hits[path] for path in bodies} == dict.fromkeys(bodies, 1)
    shas = {hashlib.sha256(b).hexdigest() for b in bodies.values()}
    assert shas <= _media_shas(cluster.settings)


def test_per_host_cap_holds_across_two_workers(cluster: Cluster, origin: OriginServer,
                                               tmp_path: Path) -> None:
    urls = [f"http://cap.example.com/cap/c{i}.jpg" for i in range(10)]
    write_article(tmp_path, "cap", urls)
    _scans, plan = plan_paths([str(tmp_path)], cluster.settings)
    _serve(origin, list(plan.assets), delay=0.3)

    sent = enqueue_plan(plan, cluster.settings)
    counts = wait_for(sent.batch, sent.enqueued, cluster.settings, timeout=60)
    assert counts == {"archived": 10}
    # 8 worker threads wanted the host at once; the shared cap let 2 through.
    assert 1 <= origin.max_inflight["cap.example.com"] <= 2


def test_429_with_retry_after_pauses_the_host_for_every_worker(
        cluster: Cluster, origin: OriginServer, tmp_path: Path) -> None:
    urls = [f"http://pause.example.com/pause/p{i}.jpg" for i in range(10)]
    write_article(tmp_path, "pause", urls)
    _scans, plan = plan_paths([str(tmp_path)], cluster.settings)
    _serve(origin, list(plan.assets), delay=0.1)
    first = urlsplit(urls[0]).path
    origin.add(first, [Response(status=429, headers={"Retry-After": "2"}, body=b"slow down",
                                content_type="text/plain", delay=0.1),
                       Response(body=media.jpeg(color=(1, 2, 3)), content_type=None)])

    sent = enqueue_plan(plan, cluster.settings)
    counts = wait_for(sent.batch, sent.enqueued, cluster.settings, timeout=60)
    assert counts == {"archived": 10}

    arrivals = [t for (host, _raw, _h), t in zip(origin.requests, origin.request_times,
                                                  strict=True) if host == "pause.example.com"]
    hit_429 = next(t for (host, raw, _h), t in zip(origin.requests, origin.request_times,
                                                   strict=True) if raw == first)
    sent_429 = hit_429 + 0.1  # the response's delay
    # Requests already past the limiter when the 429 landed may still arrive just after it;
    # after that, nobody (on either worker) starts one until Retry-After has run out.
    later = [t for t in arrivals if t > sent_429 + 0.3]
    assert later, "the remaining assets were fetched after the pause"
    assert min(later) >= sent_429 + 1.8
    assert origin.hits[first] == 2


def test_permanent_error_is_not_retried_transient_is(cluster: Cluster, origin: OriginServer,
                                                     tmp_path: Path) -> None:
    urls = ["http://other.example.com/errs/gone.jpg", "http://other.example.com/errs/flaky.jpg"]
    path = tmp_path / "errs.md"
    write_article(tmp_path, "errs", urls)
    text = path.read_text(encoding="utf-8")
    # Direct only: the proxy route would be a second, legitimate request for each.
    path.write_text(text.replace("https://cors.zfour.workers.dev/?", ""), encoding="utf-8")
    _scans, plan = plan_paths([str(tmp_path)], cluster.settings)
    origin.add("/errs/gone.jpg", Response(status=404, body=b"no", content_type="text/plain"))
    origin.add("/errs/flaky.jpg", [Response(status=503, body=b"busy", content_type="text/plain"),
                                   Response(status=503, body=b"busy", content_type="text/plain"),
                                   Response(body=media.jpeg(color=(9, 9, 9)),
                                            content_type=None)])

    sent = enqueue_plan(plan, cluster.settings)
    counts = wait_for(sent.batch, sent.enqueued, cluster.settings, timeout=60)
    assert counts == {"archived": 1, "failed": 1}
    assert origin.hits["/errs/gone.jpg"] == 1
    # Two tries in the first delivery (fetch.retries=1), then a Celery retry that succeeds.
    assert origin.hits["/errs/flaky.jpg"] == 3
    with open_store(cluster.settings.store) as store:
        by_origin = {a.origin: Manifest(store).load(a.id) for a in plan.assets}
    gone, flaky = by_origin[urls[0]], by_origin[urls[1]]
    assert gone is not None and gone.status == "failed"
    assert gone.error is not None and gone.error["code"] == "http-404"
    assert flaky is not None and flaky.status == "archived"


def test_enqueue_wait_lists_each_failed_asset_with_its_reason(
        cluster: Cluster, origin: OriginServer, tmp_path: Path) -> None:
    urls = ["http://other.example.com/listed/gone.jpg", "http://other.example.com/listed/ok.jpg"]
    path = write_article(tmp_path, "listed", urls)
    path.write_text(path.read_text(encoding="utf-8").replace("https://cors.zfour.workers.dev/?",
                                                             ""), encoding="utf-8")
    origin.add("/listed/ok.jpg", Response(body=media.jpeg(color=(1, 2, 3))))
    done = run_cli(["enqueue", str(tmp_path), "--wait", "--timeout", "60"], cluster.env)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert f"failed   http-404         {urls[0]} (HTTP 404)" in lines, done.stdout
    assert lines[-1].startswith("archived 1, failed 1, skipped 0")
