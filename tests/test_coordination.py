"""Redis coordination against a real redis-server: claims, delivery counts, host limits and
pauses across limiter instances (each standing for one worker), batch progress, status."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from archiver.drivers.coordination import (
    Batches,
    Claims,
    Deliveries,
    RedisHostLimiter,
    connect,
    paused_hosts,
    status_snapshot,
)
from archiver.errors import ConfigError, CoordinationError
from archiver.settings import Settings, load_settings
from tests.support.services import flushed


def _settings(redis_url: str, **env: str) -> Settings:
    # Database 1: the Celery tests use database 0 of the same server.
    return load_settings(environ={"ARCHIVER_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/1",
                                  **env})


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return _settings(redis_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    with flushed(settings) as c:
        yield c


def test_claim_is_exclusive_and_released_only_by_its_holder(client: redis.Redis) -> None:
    claims = Claims(client, ttl=5)
    first = claims.acquire("a1")
    assert first is not None
    assert claims.acquire("a1") is None
    assert 0 < claims.seconds_left("a1") <= 5
    assert claims.held() == 1
    # A stale holder whose lease expired and was retaken must not delete the new claim.
    client.set("archiver:claim:a1", "someone-else")
    first.release()
    assert client.get("archiver:claim:a1") == "someone-else"
    client.delete("archiver:claim:a1")
    second = claims.acquire("a1")
    assert second is not None
    second.release()
    assert claims.seconds_left("a1") == 0
    assert claims.held() == 0


def test_claim_is_renewed_while_held_and_expires_when_the_holder_is_gone(
        client: redis.Redis) -> None:
    claims = Claims(client, ttl=1.0)
    lease = claims.acquire("slow")
    assert lease is not None
    time.sleep(2.2)  # two TTLs: only the renewal thread keeps the key alive
    assert client.get("archiver:claim:slow") == lease.token
    claims.renewer.remove(lease.key)  # what a killed worker amounts to: no more renewals
    time.sleep(1.3)
    again = claims.acquire("slow")
    assert again is not None
    # Given up, or its renewal thread (which takes back a claim Redis lost) would put the
    # claim back into later tests' flushed database: seen as a second claim held there.
    again.release()


def test_a_claim_redis_lost_is_taken_back_by_its_holder_but_not_anothers(
        client: redis.Redis) -> None:
    claims = Claims(client, ttl=30)
    lease = claims.acquire("wiped")
    assert lease is not None
    client.flushdb()  # Redis restarted empty while the holder still works
    assert lease.renew() == 1
    assert client.get("archiver:claim:wiped") == lease.token
    client.set("archiver:claim:wiped", "another-worker")  # lapsed and taken meanwhile
    assert lease.renew() == 0
    assert client.get("archiver:claim:wiped") == "another-worker"
    client.delete("archiver:claim:wiped")
    lease.release()
    assert lease.renew() == 0  # given up: a late renewal takes nothing back
    assert client.get("archiver:claim:wiped") is None


def test_deliveries_count_unfinished_starts(client: redis.Redis) -> None:
    deliveries = Deliveries(client, ttl=60)
    assert deliveries.start("x") == 1
    assert deliveries.start("x") == 2  # the first start never finished: a worker died
    deliveries.finish("x")
    assert deliveries.start("x") == 1
    assert 0 < client.pttl("archiver:deliveries:x") <= 60_000


def _hammer(limiters: list[RedisHostLimiter], host: str, n: int, hold: float
            ) -> tuple[int, list[float]]:
    """Run n requests through the limiters from n threads; the highest number inside at once
    and the start times."""
    lock = threading.Lock()
    inside = 0
    peak = 0
    starts: list[float] = []

    def one(i: int) -> None:
        nonlocal inside, peak
        with limiters[i % len(limiters)].slot(host):
            with lock:
                inside += 1
                peak = max(peak, inside)
                starts.append(time.monotonic())
            time.sleep(hold)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return peak, sorted(starts)


def test_concurrency_cap_holds_across_limiter_instances(redis_url: str,
                                                        client: redis.Redis) -> None:
    s = _settings(redis_url, ARCHIVER_FETCH__PER_HOST_CONCURRENCY="2")
    limiters = [RedisHostLimiter(connect(s), s) for _ in range(3)]
    peak, starts = _hammer(limiters, "img.example.com", 12, 0.05)
    assert len(starts) == 12
    assert peak <= 2
    # Every slot was given back.
    assert client.zcard("archiver:host:img.example.com:slots") == 0


def test_rate_spaces_starts_across_instances(redis_url: str, client: redis.Redis) -> None:
    s = _settings(redis_url, ARCHIVER_FETCH__HOSTS='[{"pattern": "slow.example", "rate": 20, '
                  '"max_concurrency": 8}]')
    limiters = [RedisHostLimiter(connect(s), s) for _ in range(2)]
    _peak, starts = _hammer(limiters, "slow.example", 6, 0.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 20/s means starts at least ~50 ms apart (Redis time vs local clock: small slack).
    assert min(gaps) >= 0.035


def test_pause_blocks_other_instances_until_it_expires(redis_url: str,
                                                       client: redis.Redis) -> None:
    s = _settings(redis_url)
    one, other = RedisHostLimiter(connect(s), s), RedisHostLimiter(connect(s), s)
    one.pause("Busy.Example", 0.8)
    one.pause("busy.example", 0.1)  # a shorter Retry-After does not shorten the pause
    assert 0.5 < paused_hosts(client)["busy.example"] <= 0.8
    paused_at = time.monotonic()
    with other.slot("busy.example"):
        waited = time.monotonic() - paused_at
    assert waited >= 0.6
    assert "busy.example" not in paused_hosts(client)


def test_a_dead_holders_slot_expires(redis_url: str, client: redis.Redis) -> None:
    s = _settings(redis_url, ARCHIVER_FETCH__PER_HOST_CONCURRENCY="1",
                  ARCHIVER_CELERY__HOST_SLOT_TTL="0.5")
    limiter = RedisHostLimiter(connect(s), s)
    # A holder that died: its member is in the set and nobody renews it.
    client.zadd("archiver:host:h.example:slots", {"dead": 0})
    with limiter.slot("h.example"):
        assert client.zscore("archiver:host:h.example:slots", "dead") is None


def test_batches_count_final_statuses(client: redis.Redis) -> None:
    batches = Batches(client, ttl=60)
    batches.start("b1", 3)
    batches.report("b1", "a", "archived")
    batches.report("b1", "b", "failed")
    batches.report("b1", "a", "archived")  # a redelivered task reports the same asset again
    assert batches.progress("b1") == {"archived": 1, "failed": 1}  # the same asset counts once
    assert client.hget("archiver:batch:b1:meta", "total") == "3"


def test_status_snapshot_reads_queues_claims_and_pauses(settings: Settings,
                                                        client: redis.Redis) -> None:
    client.rpush("media", "m1", "m2")
    client.rpush("media\x06\x163", "m3")
    client.rpush("video", "v1")
    Claims(client, 5).acquire("asset")
    RedisHostLimiter(client, settings).pause("zkres1.myzaker.com", 5)
    snap = status_snapshot(client, settings)
    assert snap["queues"] == {"media": 3, "video": 1}
    assert snap["in_flight"] == 1
    assert set(snap["paused"]) == {"zkres1.myzaker.com"}


def test_redis_down_is_a_retryable_coordination_error() -> None:
    from tests.support.services import free_port

    s = load_settings(environ={"ARCHIVER_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(CoordinationError) as info:
        Claims(connect(s), 5).acquire("a")
    assert info.value.retryable


def test_visibility_timeout_is_derived_and_validated() -> None:
    s = load_settings(environ={})
    c = s.celery
    assert c.effective_visibility_timeout > c.video_time_limit + c.retry_backoff_max
    with pytest.raises(ConfigError):
        load_settings(environ={"ARCHIVER_CELERY__VISIBILITY_TIMEOUT": "60"})
    with pytest.raises(ConfigError):
        load_settings(environ={"ARCHIVER_CELERY__MEDIA_SOFT_TIME_LIMIT": "2000"})


def test_release_during_a_redis_outage_happens_once_redis_is_back() -> None:
    from archiver.drivers.coordination import Claims
    from archiver.drivers.renewal import Releaser
    from tests.support.services import RedisServer

    server = RedisServer(aof=True).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        claims = Claims(client, ttl=60)
        lease = claims.acquire("a1")
        assert lease is not None
        server.kill(signal.SIGTERM)  # a clean stop: the claim is in the AOF
        releaser = Releaser(period=0.1)
        releaser.release(lambda: client.delete("archiver:claim:a1"), within=60)  # no raise
        server.start()
        deadline = time.monotonic() + 10
        while client.exists("archiver:claim:a1") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not client.exists("archiver:claim:a1")  # not held for the rest of its lease
        lease.release()  # already gone: a no-op, never an error
    finally:
        server.close()
