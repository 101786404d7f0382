"""In-flight entries and the sweeper against a real redis-server: what is republished (an
asset past its deadline, unclaimed, without a final status), by one sweeper only, and what is
left alone (claimed, waiting for a retry, final). And ``loss.Recovery``: which assets
``enqueue --wait`` publishes again when Redis lost its last writes (AOF ``everysec``) or all
of its data."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery.exceptions import Retry
from celery.worker import state as worker_state

from archiver.drivers.coordination import BATCHES, Batches, Claims
from archiver.drivers.enqueue import send
from archiver.drivers.loss import Recovery, mark_sent, sent_key
from archiver.drivers.sweep import Inflight, Sweeper
from archiver.drivers.watch import Received
from archiver.models import Asset
from archiver.settings import Settings, load_settings
from tests.support.services import flushed


@pytest.fixture
def settings(redis_url: str) -> Settings:
    # Database 3: other tests use 0-2 of the same server.
    return load_settings(environ={"ARCHIVER_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/3",
                                  "ARCHIVER_CELERY__CLAIM_TTL": "0.2"})


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    with flushed(settings) as c:
        yield c


class Recording(Sweeper):
    """A sweeper that records what it would publish instead of sending it to a broker."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.published: list[tuple[str, str]] = []

    def _publish(self, batch: str, assets: list[Asset]) -> None:
        self.published += [(batch, a.id) for a in assets]


ASSETS = [Asset(origin=f"http://h.test/{n}.jpg", kind="image") for n in range(4)]
ID = [a.id for a in ASSETS]


def _asset(n: int) -> dict[str, object]:
    return ASSETS[n].to_dict()


def test_lost_assets_are_republished_once_and_the_rest_left_alone(
        settings: Settings, client: redis.Redis) -> None:
    batches = Batches(client, settings.celery.batch_ttl)
    batches.start("b", 4)
    claims = Claims(client, settings.celery.claim_ttl)
    inflight = Inflight(claims, settings)
    lost, claimed, waiting, done = (_asset(n) for n in range(4))
    for asset in (lost, claimed, waiting, done):
        inflight.mark("b", asset, 0)
    lease = claims.acquire(ID[1])  # a live worker holds it
    assert lease is not None
    with pytest.raises(Retry), inflight.started("b", waiting) as final:  # retry in 60 s
        assert final == ""
        raise Retry(when=datetime.now(UTC) + timedelta(seconds=60))
    batches.report("b", ID[3], "archived")

    first, second = Recording(client, settings), Recording(client, settings, batch="b")
    assert first.sweep() == 1 and first.published == [("b", ID[0])]
    assert second.sweep() == 0  # held back: one sweeper publishes a lost asset
    assert set(client.hkeys("archiver:batch:b:inflight")) == {ID[0], ID[1], ID[2]}
    lease.release()

    # A late copy of a finished asset's message is a no-op: the batch has its status.
    with inflight.started("b", done) as final:
        assert final == "archived"


def test_a_running_task_is_kept_alive_by_the_heartbeat(
        settings: Settings, client: redis.Redis) -> None:
    Batches(client, settings.celery.batch_ttl).start("b", 1)
    claims = Claims(client, settings.celery.claim_ttl)
    inflight, sweeper = Inflight(claims, settings), Recording(client, settings)
    with inflight.started("b", _asset(0)):
        for _ in range(6):  # three leases without the claim: only the heartbeat keeps it
            time.sleep(0.1)
            assert sweeper.sweep() == 0
    time.sleep(0.3)
    assert sweeper.sweep() == 1  # gone without a final status: lost


@dataclass
class _Request:
    """What ``Received`` reads of a Celery request the main process received."""

    args: tuple[object, ...]
    eta: datetime | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    kwargs: dict[str, object] = field(default_factory=dict)
    time_start: float | None = None
    acknowledged: bool = False


def test_a_received_message_is_in_flight_until_a_pool_process_starts_it(
        settings: Settings, client: redis.Redis) -> None:
    Batches(client, settings.celery.batch_ttl).start("b", 2)
    claims = Claims(client, settings.celery.claim_ttl)
    received, sweeper = Received(Inflight(claims, settings), settings), Recording(client, settings)
    waiting = _Request((_asset(0), "b"))
    countdown = _Request((_asset(1), "b"), eta=datetime.now(UTC) + timedelta(seconds=60))
    with _consumer_holds(waiting, countdown):
        received.hold(waiting)
        received.hold(countdown)
        for _ in range(6):  # three leases: only the main process's heartbeat keeps them
            time.sleep(0.1)
            assert sweeper.sweep() == 0
        waiting.time_start = time.time()  # a pool process started it: its heartbeat takes over
        time.sleep(0.3)
        # Not renewed by the main process any more (and no pool process here): lost. The
        # other stays held until its countdown has passed.
        assert sweeper.sweep() == 1 and sweeper.published == [("b", ID[0])]


def test_a_received_message_the_consumer_dropped_is_no_longer_renewed(
        settings: Settings, client: redis.Redis) -> None:
    """The connection to the broker lost, the consumer drops the messages it held unstarted
    (``Consumer.on_close``) and gives them back to a Redis that may have lost them: their
    entries lapse and are swept instead of being renewed until the visibility timeout."""
    Batches(client, settings.celery.batch_ttl).start("b", 2)
    claims = Claims(client, settings.celery.claim_ttl)
    received, sweeper = Received(Inflight(claims, settings), settings), Recording(client, settings)
    kept, dropped = _Request((_asset(0), "b")), _Request((_asset(1), "b"))
    with _consumer_holds(kept, dropped):
        received.hold(kept)
        received.hold(dropped)
        worker_state.requests.pop(dropped.id)
        time.sleep(0.6)  # three leases
        assert sweeper.sweep() == 1 and sweeper.published == [("b", ID[1])]


@contextmanager
def _consumer_holds(*requests: _Request) -> Iterator[None]:
    """The requests registered as the consumer registers those it holds (``task_reserved``,
    ``task_scheduled``)."""
    for request in requests:
        worker_state.requests[request.id] = request  # type: ignore[assignment]
    try:
        yield
    finally:
        for request in requests:
            worker_state.requests.pop(request.id, None)


def test_finished_batches_are_no_longer_swept(settings: Settings, client: redis.Redis) -> None:
    batches = Batches(client, settings.celery.batch_ttl)
    batches.start("b", 1)
    Inflight(Claims(client, 1), settings).mark("b", _asset(0), 10)
    batches.report("b", ID[0], "failed")
    sweeper = Recording(client, settings)
    assert sweeper.batches() == ["b"]
    assert sweeper.sweep() == 0
    assert sweeper.batches() == []


def test_a_failing_heartbeat_job_stops_no_other_lease() -> None:
    from archiver.drivers.renewal import Renewer
    from archiver.errors import CoordinationError

    renewer, ran = Renewer(0.05), threading.Event()

    def down() -> None:  # what an in-flight mark raises while Redis is down
        raise CoordinationError("redis: ConnectionError")

    renewer.add("inflight", down)
    renewer.add("claim", ran.set)
    for _ in range(3):  # the thread lives on, round after round
        ran.clear()
        assert ran.wait(5)


LOSS_BATCH = "b-loss"


def _assets(n: int) -> list[Asset]:
    return [Asset(origin=f"http://zkres1.myzaker.com/l/{i}.jpg", kind="image",
                  urls=(f"http://zkres1.myzaker.com/l/{i}.jpg",)) for i in range(n)]


def _queued(client: redis.Redis) -> list[str]:
    return [json.loads(m)["headers"]["argsrepr"] for m in client.lrange("media", 0, -1)]


def _enqueue(client: redis.Redis, settings: Settings, assets: list[Asset]) -> Recovery:
    Batches(client, settings.celery.batch_ttl).start(LOSS_BATCH, len(assets))
    send(assets, settings, batch=LOSS_BATCH,
         on_chunk=lambda n: mark_sent(client, LOSS_BATCH, n, settings.celery.batch_ttl))
    assert client.get(sent_key(LOSS_BATCH)) == str(len(assets))
    recovery = Recovery(client, settings, LOSS_BATCH, assets, None)
    recovery.settle = 0.0  # no live worker here to take its claims back
    return recovery


def test_the_last_writes_lost_are_published_again_and_nothing_before(
        client: redis.Redis, settings: Settings) -> None:
    assets = _assets(6)
    recovery = _enqueue(client, settings, assets)
    assert recovery.check({}) == 0  # nothing lost: nothing done
    # A crash with AOF everysec: the last two messages and the count after the fourth survive
    # no more (LPUSH: the newest messages are at the head).
    client.lpop("media", 2)
    client.set(sent_key(LOSS_BATCH), 4)
    client.set(f"archiver:claim:{assets[5].id}", "a-live-worker")  # started, still working
    assert recovery.check({}) == 0  # seen; published again after one heartbeat
    assert recovery.check({}) == 1
    assert sorted(_queued(client)) == sorted(a.id for a in assets[:5])
    assert client.get(sent_key(LOSS_BATCH)) == "6"
    assert recovery.check({}) == 0


def test_a_redis_restarted_empty_gets_every_unfinished_asset_back(
        client: redis.Redis, settings: Settings) -> None:
    assets = _assets(5)
    recovery = _enqueue(client, settings, assets)
    client.flushdb()
    # Re-created by its worker's heartbeat, and reported by a task since:
    client.hset(f"archiver:batch:{LOSS_BATCH}:inflight", assets[1].id, "0|{}")
    client.hset(f"archiver:batch:{LOSS_BATCH}", assets[0].id, "archived")
    recorded = {assets[2].id: "archived"}  # its report lost, its record read
    recovery.check(recorded)
    assert recovery.check(recorded) == 2
    assert sorted(_queued(client)) == sorted(a.id for a in (assets[3], assets[4]))
    # The status read from its record is the batch's again, so that the batch finishes.
    assert client.hget(f"archiver:batch:{LOSS_BATCH}", assets[2].id) == "archived"
    # Registered again, for the workers' sweepers.
    assert client.hget(f"archiver:batch:{LOSS_BATCH}:meta", "total") == "5"
    assert client.zscore(BATCHES, LOSS_BATCH) is not None
