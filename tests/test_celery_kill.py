"""kill -9 a worker in the middle of a slow download: the message comes back (acks late, short
visibility timeout), the dead worker's claim expires, a second worker archives the asset, and
exactly one complete object is stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

import redis

from archiver.drivers.enqueue import enqueue_plan, wait_for
from archiver.drivers.job import plan_paths
from archiver.manifest import Manifest
from archiver.settings import load_settings
from archiver.store import open_store
from archiver.store.s3 import S3Store
from tests.support.origin import OriginServer, Response
from tests.support.workers import (
    Workers,
    wait_until,
    worker_env,
    workers,  # noqa: F401  (the module-scoped fixture)
    write_article,
)

STORE = "s3://celery-kill/archive"


def test_sigkill_mid_download_archives_exactly_once(
        workers: Workers, redis_url: str, aws_env: str,  # noqa: F811
        origin: OriginServer, tmp_path: Path) -> None:
    env = worker_env(
        redis_url, aws_env, STORE, origin,
        # Short limits so the unacked message comes back within seconds; the visibility
        # timeout still exceeds the hard limit plus the longest retry delay, as validated.
        ARCHIVER_CELERY__MEDIA_SOFT_TIME_LIMIT="3", ARCHIVER_CELERY__MEDIA_TIME_LIMIT="4",
        ARCHIVER_CELERY__VIDEO_SOFT_TIME_LIMIT="3", ARCHIVER_CELERY__VIDEO_TIME_LIMIT="4",
        ARCHIVER_CELERY__RETRY_BACKOFF_MAX="0.5", ARCHIVER_CELERY__OUTAGE_BACKOFF_MAX="0.5",
        ARCHIVER_CELERY__VISIBILITY_TIMEOUT="5",
        ARCHIVER_CELERY__RESTORE_INTERVAL="1", ARCHIVER_CELERY__CLAIM_TTL="3",
        ARCHIVER_FETCH__RETRIES="0",
    )
    settings = load_settings(environ=env)
    with open_store(settings.store) as store:
        assert isinstance(store, S3Store)
        store.ensure_bucket()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()

    url = "http://zkres1.myzaker.com/kill/slow_1024.jpg"
    write_article(tmp_path, "kill", [url])
    _scans, plan = plan_paths([str(tmp_path)], settings)
    (asset,) = plan.todo
    from tests.support import media

    body = media.jpeg(width=900, height=700) + b"\0" * 200_000  # a JPEG with trailing padding
    origin.add("/kill/slow_1024.jpg", Response(body=body, content_type=None, chunk=16384,
                                               drip=0.15))

    # solo pool: the worker process itself downloads, so SIGKILL hits the download.
    first = workers.start("doomed", env, pool="solo", concurrency=1)
    sent = enqueue_plan(plan, settings)
    wait_until(lambda: origin.hits["/kill/slow_1024.jpg"] >= 1, timeout=30)
    wait_until(lambda: client.exists(f"archiver:claim:{asset.id}"), timeout=10)
    first.kill()
    assert origin.hits["/kill/slow_1024.jpg"] == 1
    assert not any(True for _ in store.list("media/"))  # nothing half-written

    # The heir starts through ``archiver worker``, the wrapper operators use.
    workers.start("heir", env, pool="solo", concurrency=1, cli=True)
    counts = wait_for(sent.batch, sent.enqueued, settings, timeout=45)
    workers.print_logs()
    assert counts == {"archived": 1}
    assert origin.hits["/kill/slow_1024.jpg"] == 2  # the killed download, then the real one
    record = Manifest(store).load(asset.id)
    assert record is not None and record.status == "archived"
    assert record.sha256 == hashlib.sha256(body).hexdigest()
    objects = list(store.list("media/"))
    assert [o.key for o in objects] == [record.key]
    assert objects[0].size == len(body)
    # Nothing left behind: the claim was released and the delivery count cleared.
    assert not client.exists(f"archiver:claim:{asset.id}")
    assert not client.exists(f"archiver:deliveries:{asset.id}")
