"""Batch journals and the fleet's rescue of batches Redis lost (``journal.Rescue``), against a
real redis-server, a real local store and moto's S3 over HTTP behind a TCP proxy that is cut:
what a round costs when Redis is healthy (nothing per asset), what it publishes again after
Redis lost a batch (and what it leaves alone), and that an outage only skips a round."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from archiver.drivers.coordination import BATCHES, Batches, Claims
from archiver.drivers.journal import (
    TURN,
    Rescue,
    journal_key,
    journaled,
    read_journal,
    write_journal,
)
from archiver.drivers.loss import Recovery, mark_sent
from archiver.manifest import Manifest
from archiver.models import Asset, Record
from archiver.settings import Settings, load_settings
from archiver.store import open_store
from archiver.store.base import ObjectInfo, Store
from archiver.store.local import LocalStore
from archiver.store.s3 import S3Store
from tests.support.faults import TcpProxy
from tests.support.services import flushed, redis_server

BATCH = "j-batch"


class Counting:
    """A real store whose calls are counted by name (what a round asks of the store)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if callable(attr):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return attr(*args, **kwargs)
            return counted
        return attr

    def list(self, prefix: str) -> Iterable[ObjectInfo]:
        self.calls["list"] += 1
        return list(self.store.list(prefix))


@pytest.fixture(scope="module")
def private_redis() -> Iterator[str]:
    """A redis-server of this module's: its command counts are this module's alone."""
    with redis_server() as url:
        yield url


@pytest.fixture
def settings(private_redis: str, tmp_path: Path) -> Settings:
    return load_settings(environ={"ARCHIVER_BROKER_URL": private_redis,
                                  "ARCHIVER_STORE_URL": str(tmp_path / "store"),
                                  "ARCHIVER_CELERY__CLAIM_TTL": "0.4"})


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    with flushed(settings) as c:
        yield c


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Counting]:
    with LocalStore(tmp_path / "store") as local:
        yield Counting(local)


def _assets(n: int) -> list[Asset]:
    return [Asset(origin=f"http://zkres1.myzaker.com/j/{i}.jpg", kind="image",
                  urls=(f"http://zkres1.myzaker.com/j/{i}.jpg",)) for i in range(n)]


def _sent(client: redis.Redis, settings: Settings, store: Any, assets: list[Asset],
          batch: str = BATCH) -> None:
    """What ``enqueue_plan`` leaves behind once it has sent the batch (no messages: no worker
    here, and a round that finds nothing lost publishes nothing)."""
    Batches(client, settings.celery.batch_ttl).start(batch, len(assets))
    write_journal(store, batch, assets)
    mark_sent(client, batch, len(assets), settings.celery.batch_ttl)


def _rescue(client: redis.Redis, settings: Settings, store: Any) -> Rescue:
    rescue = Rescue(client, settings, store)
    rescue.recoverer.settle = 0.0  # no live worker here to take its claims back
    return rescue


def _queued(client: redis.Redis) -> list[str]:
    return [json.loads(m)["headers"]["argsrepr"] for m in client.lrange("media", 0, -1)]


def _commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def test_a_journal_holds_the_batch_in_the_order_sent(store: Counting) -> None:
    assets = _assets(3)
    write_journal(store, BATCH, assets)
    assert journaled(store) == [BATCH]
    assert read_journal(store, BATCH) == assets


def test_a_round_costs_the_same_whatever_the_batches_sizes(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    """Redis healthy: one listing of the journals, no journal read, and the same Redis
    commands for a batch of 10 assets as for one of 2,000."""
    costs = []
    for n in (10, 2000):
        client.flushdb()
        _sent(client, settings, store, _assets(n))
        store.calls.clear()
        before = _commands(client)
        assert _rescue(client, settings, store).sweep() == 0
        costs.append((_commands(client) - before, dict(store.calls)))
    assert costs[0] == costs[1], costs
    assert costs[0][1] == {"list": 1}, costs  # the journal itself is never read
    # The turn, five commands per batch listed (one pipeline), one MGET of the counts.
    assert costs[0][0] == 7, costs


def test_one_worker_per_interval_lists_the_journals(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    _sent(client, settings, store, _assets(2))
    first, second = _rescue(client, settings, store), _rescue(client, settings, store)
    first.sweep()
    second.sweep()
    assert store.calls["list"] == 1
    assert client.pttl(TURN) > 0


def test_a_batch_redis_lost_is_published_again_but_what_is_done_or_held(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    assets = _assets(6)
    _sent(client, settings, store, assets)
    manifest = Manifest(store.store)
    # Archived, its status report lost with Redis:
    manifest.save(Record(origin=assets[0].origin, kind="image", status="archived",
                         key=f"media/ab/{'ab' * 32}.jpg", sha256="ab" * 32, size=1))
    client.flushdb()  # Redis restarted empty
    # What live workers re-created since: a claim taken back, an in-flight entry marked
    # again, a status reported after the restart.
    client.set(f"archiver:claim:{assets[1].id}", "a-live-worker")
    client.hset(f"archiver:batch:{BATCH}:inflight", assets[2].id, "0|{}")
    client.hset(f"archiver:batch:{BATCH}", assets[3].id, "archived")
    assert _rescue(client, settings, store).sweep() == 2
    assert sorted(_queued(client)) == sorted(a.id for a in assets[4:])
    # Registered again (the workers' sweepers look at it), its count whole, the status read
    # from the record written back so that the batch finishes.
    assert client.hget(f"archiver:batch:{BATCH}:meta", "total") == "6"
    assert client.zscore(BATCHES, BATCH) is not None
    assert client.get(f"archiver:batch:{BATCH}:sent") == "6"
    assert client.hget(f"archiver:batch:{BATCH}", assets[0].id) == "archived"
    # Got back: another worker's round (its turn come) finds nothing to do.
    client.delete(TURN)
    assert _rescue(client, settings, store).sweep() == 0
    assert len(_queued(client)) == 2


def test_the_last_second_lost_is_published_again_from_the_count_that_survived(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    assets = _assets(5)
    _sent(client, settings, store, assets)
    client.set(f"archiver:batch:{BATCH}:sent", 3)  # AOF everysec: the last count lost
    assert _rescue(client, settings, store).sweep() == 2
    assert sorted(_queued(client)) == sorted(a.id for a in assets[3:])


def test_a_batch_still_being_sent_or_got_back_elsewhere_is_left_alone(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    assets = _assets(4)
    _sent(client, settings, store, assets)
    client.set(f"archiver:batch:{BATCH}:sent", 2)
    sending = Claims(client, 5, kind="sending:").acquire(BATCH)
    assert sending is not None
    assert _rescue(client, settings, store).sweep() == 0  # its enqueuer sends the rest
    sending.release()
    # enqueue --wait's Recovery holds the batch's recovery: the worker's round keeps off.
    recovery = Claims(client, 5, kind="recovery:").acquire(BATCH)
    assert recovery is not None
    client.delete(TURN)
    assert _rescue(client, settings, store).sweep() == 0
    recovery.release()
    assert _queued(client) == []
    client.delete(TURN)
    assert _rescue(client, settings, store).sweep() == 2


def test_enqueue_waits_recovery_and_the_fleets_do_not_both_publish(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    assets = _assets(4)
    _sent(client, settings, store, assets)
    waiting = Recovery(client, settings, BATCH, assets, None)
    waiting.settle = 0.0
    client.flushdb()
    assert waiting.check({}) == 0  # seen
    assert _rescue(client, settings, store).sweep() == 4  # a worker was first
    assert waiting.check({}) == 0  # and the enqueuer finds the batch back
    assert len(_queued(client)) == 4


def test_a_finished_batchs_journal_is_removed(
        client: redis.Redis, settings: Settings, store: Counting) -> None:
    assets = _assets(3)
    _sent(client, settings, store, assets)
    rescue = _rescue(client, settings, store)
    rescue.sweep()
    assert journaled(store) == [BATCH]  # not finished yet
    for asset in assets:
        Batches(client, settings.celery.batch_ttl).report(BATCH, asset.id, "archived")
    client.delete(TURN)
    rescue.sweep()
    assert journaled(store) == []
    assert not store.store.exists(journal_key(BATCH))


def test_a_store_that_does_not_answer_skips_a_round_and_the_next_gets_the_batch_back(
        client: redis.Redis, settings: Settings, s3_endpoint: str,
        aws_env: str) -> None:
    proxy = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1])).start()
    s3 = settings.with_overrides(store={"url": f"s3://journal-{uuid.uuid4().hex[:10]}/p",
                                        "endpoint_url": proxy.url, "request_attempts": 1})
    try:
        with open_store(s3.store) as store:
            assert isinstance(store, S3Store)
            store.ensure_bucket()
            assets = _assets(3)
            _sent(client, s3, store, assets)
            client.flushdb()
            proxy.cut()
            assert _rescue(client, s3, store).sweep() == 0  # no raise: the next round
            proxy.restore()
            client.delete(TURN)
            assert _rescue(client, s3, store).sweep() == 3
    finally:
        proxy.stop()
