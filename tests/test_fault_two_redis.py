"""Broker and coordination on separate Redis servers (``celery.redis_url``), with real
processes: a prefork ``celery worker`` whose queue is on one redis-server and whose claims,
statuses and in-flight entries are on another, fed by a plain enqueue (nobody waits on the
batch). Each server in turn loses its data (SIGKILL, AOF deleted, back empty 2 s later) while
the batch runs; every asset ends archived once with its bytes, with no further command."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.fleet import Fleet, converge, media_keys, running, serve
from tests.support.origin import OriginServer
from tests.support.services import RedisServer
from tests.support.workers import FAST, wait_until

pytestmark = pytest.mark.faults

@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, origin_server: OriginServer,
        s3_endpoint: str) -> Iterator[tuple[Fleet, RedisServer]]:
    """One worker (2 pool processes) and a folder store; the broker on the fleet's Redis, the
    coordination on a second one."""
    coordination = RedisServer(aof=True).start()
    try:
        with running(tmp_path_factory.mktemp("two"), origin_server, s3_endpoint, workers=1,
                     store=str(tmp_path_factory.mktemp("two-store")),
                     ARCHIVER_REDIS_URL=coordination.url, **FAST) as fleet:
            yield fleet, coordination
    finally:
        coordination.close()


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


@pytest.mark.parametrize("loses", ["coordination", "broker"])
def test_either_redis_losing_its_data_loses_nothing(
        two: tuple[Fleet, RedisServer], origin: OriginServer, loses: str) -> None:
    fleet, coordination = two
    served = serve(origin, f"two-{loses}", 12, seconds=0.8)
    with fleet.store() as store:
        before = media_keys(store)
    sent = fleet.enqueue(served, loses)
    wait_until(lambda: sum(origin.hits[s.path] for s in served) >= 3, timeout=30, every=0.02)
    # Each server holds its own part: the queue and the sent count on the broker's, the
    # batch on the coordination Redis.
    broker = _client(fleet.redis)
    assert broker.llen("media") > 0 and broker.get(f"archiver:batch:{sent.batch}:sent")
    assert not broker.exists(f"archiver:batch:{sent.batch}:meta")
    assert _client(coordination).exists(f"archiver:batch:{sent.batch}:meta")
    in_flight = fleet.in_flight()
    (coordination if loses == "coordination" else fleet.redis).wipe_restart(down=2)
    with fleet.store() as store:
        out = converge(store, served, origin, fault=f"{loses} Redis wiped",
                       since=time.monotonic(), in_flight=in_flight, before=before, timeout=90)
    print(out.row())
    assert not out.problems(within=90), (out.row(), out.notes)
