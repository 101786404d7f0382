"""What a task does with one delivery (``tasks.handle``), against real Redis, a real local
store and the origin server, without a broker: claims, poison detection, retry decisions;
and the Celery configuration the app is built with."""

from __future__ import annotations

import importlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from archiver.cli.worker import worker_argv
from archiver.drivers.coordination import connect
from archiver.drivers.tasks import (
    MEDIA_TASK,
    VIDEO_TASK,
    Worker,
    celery_config,
    handle,
    make_app,
    task_for,
)
from archiver.models import Asset, Citation
from archiver.settings import Settings, load_settings
from tests.support import media
from tests.support.origin import OriginServer, Response


@pytest.fixture
def worker(redis_url: str, origin: OriginServer, tmp_path: Path) -> Iterator[Worker]:
    settings = load_settings(environ={
        "ARCHIVER_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/2",
        "ARCHIVER_STORE_URL": str(tmp_path / "archive"),
        "ARCHIVER_FETCH__CONNECT_TO": f'["h.example:80:127.0.0.1:{origin.port}"]',
        "ARCHIVER_FETCH__ALLOW_PRIVATE": '["127.0.0.0/8"]',
        "ARCHIVER_FETCH__RETRIES": "0",
        "ARCHIVER_CELERY__MAX_DELIVERIES": "2",
        "ARCHIVER_CELERY__MAX_RETRIES": "2",
        "ARCHIVER_CELERY__RETRY_BACKOFF": "1",
        "ARCHIVER_CELERY__RETRY_BACKOFF_MAX": "3",
        "ARCHIVER_CELERY__CLAIM_TTL": "5",
    })
    with connect(settings) as client:
        client.flushdb()
    w = Worker.open(settings)  # what a worker process builds, with a short claim lease
    yield w
    w.claims.client.flushdb()
    w.close()


def _asset(path: str) -> Asset:
    return Asset(origin=f"http://h.example{path}", kind="image",
                 urls=(f"http://h.example{path}",), citations=(Citation("a.md", ("img",)),))


def test_second_delivery_of_an_archived_asset_does_not_fetch(worker: Worker,
                                                             origin: OriginServer) -> None:
    origin.add("/x.jpg", Response(body=media.jpeg(), content_type=None))
    asset = _asset("/x.jpg")
    first = handle(asset, worker, retries=0)
    again = handle(asset, worker, retries=0)
    assert first.record is not None and first.record.status == "archived"
    assert again.record is not None and again.record.status == "archived"
    assert again.record.key == first.record.key
    assert origin.hits["/x.jpg"] == 1
    assert worker.claims.held() == 0


def test_claim_held_elsewhere_means_run_again_later_without_fetching(
        worker: Worker, origin: OriginServer) -> None:
    origin.add("/busy.jpg", Response(body=media.jpeg(), content_type=None))
    asset = _asset("/busy.jpg")
    other = worker.claims.acquire(asset.id)
    assert other is not None
    outcome = handle(asset, worker, retries=0)
    assert outcome.record is None and outcome.retry == "busy"
    assert 0 < outcome.delay <= 5 / 4 + 1  # looks again well before the lease runs out
    assert origin.hits["/busy.jpg"] == 0
    other.release()


def test_asset_that_keeps_killing_workers_is_failed_not_fetched(
        worker: Worker, origin: OriginServer) -> None:
    origin.add("/poison.jpg", Response(body=media.jpeg(), content_type=None))
    asset = _asset("/poison.jpg")
    # Two earlier deliveries started and never finished: their workers died.
    worker.deliveries.start(asset.id)
    worker.deliveries.start(asset.id)
    outcome = handle(asset, worker, retries=0)
    assert outcome.retry is None and outcome.record is not None
    assert outcome.record.status == "failed"
    assert outcome.record.error is not None and outcome.record.error["code"] == "redelivered"
    assert origin.hits["/poison.jpg"] == 0
    saved = worker.ctx.manifest.load(asset.id)
    assert saved is not None and saved.error is not None
    assert saved.error["code"] == "redelivered"
    # Counter cleared: a later enqueue gets a fresh start.
    assert worker.deliveries.start(asset.id) == 1


def test_transient_failure_asks_for_a_bounded_retry(worker: Worker,
                                                    origin: OriginServer) -> None:
    origin.add("/flaky.jpg", Response(status=503, body=b"busy", content_type="text/plain"))
    asset = _asset("/flaky.jpg")
    outcome = handle(asset, worker, retries=1)
    assert outcome.retry == "transient"
    assert 0 < outcome.delay <= 3  # backoff capped by retry_backoff_max
    last = handle(asset, worker, retries=2)  # max_retries reached: the failure is final
    assert last.retry is None and last.record is not None and last.record.status == "failed"
    assert last.record.error is not None and last.record.error["retryable"] is True
    assert origin.hits["/flaky.jpg"] == 2


def test_permanent_failure_is_final(worker: Worker, origin: OriginServer) -> None:
    origin.add("/gone.jpg", Response(status=410, body=b"gone", content_type="text/plain"))
    outcome = handle(_asset("/gone.jpg"), worker, retries=0)
    assert outcome.retry is None and outcome.record is not None
    assert outcome.record.error is not None and outcome.record.error["code"] == "http-410"


def test_celery_config_delivery_guarantees() -> None:
    settings: Settings = load_settings(environ={"ARCHIVER_BROKER_URL": "redis://r:6379/3"})
    conf = celery_config(settings)
    assert conf["broker_url"] == "redis://r:6379/3"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["task_ignore_result"]
    c = settings.celery
    longest = max(c.media_time_limit, c.video_time_limit) + c.retry_backoff_max
    assert conf["broker_transport_options"]["visibility_timeout"] > longest
    assert conf["task_routes"] == {MEDIA_TASK: {"queue": "media"}, VIDEO_TASK: {"queue": "video"}}
    assert conf["task_annotations"][VIDEO_TASK]["time_limit"] == c.video_time_limit
    assert task_for("video") == VIDEO_TASK and task_for("gif") == MEDIA_TASK
    app = make_app(settings)
    assert {MEDIA_TASK, VIDEO_TASK} <= set(app.tasks)
    assert app.conf.task_acks_late is True


def test_the_worker_command_names_the_module_that_holds_the_app() -> None:
    argv = worker_argv("media", "video")
    module = importlib.import_module(argv[argv.index("-A") + 1])
    assert isinstance(module.app, Celery)
    assert {MEDIA_TASK, VIDEO_TASK} <= set(module.app.tasks)


def test_soft_time_limit_is_a_transient_failure_not_a_bug(worker: Worker,
                                                         origin: OriginServer) -> None:
    """Celery raises SoftTimeLimitExceeded from a signal handler in the task's thread; do the
    same while a download is stalled: the record says timeout (retryable), not internal."""
    origin.add("/slow.jpg", Response(body=media.jpeg(), content_type=None, delay=5))

    def soft_limit(signum: int, frame: object) -> None:
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        outcome = handle(_asset("/slow.jpg"), worker, retries=0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert outcome.retry == "transient" and outcome.record is not None
    assert outcome.record.error is not None
    assert outcome.record.error["code"] == "timeout" and outcome.record.error["retryable"]
    assert worker.claims.held() == 0
