"""Redis state shared by every worker and enqueuer: asset claims, delivery counts, per-host
limits and pauses, batch progress.

Keys (all under ``archiver:``, all with an expiry so a crash never leaves one forever):

    claim:<asset id>        token of the worker archiving the asset (SET NX PX, renewed)
    deliveries:<asset id>   starts not followed by a clean finish (INCR; poison detection)
    host:<host>:slots       sorted set of slot holders scored by their lease deadline (ms)
    host:<host>:rate        the host's next allowed start time in ms (GCRA, burst 1)
    pause:<host>            present while the host is paused after 429/Retry-After (PX)
    batch:<id>              hash asset id -> final status, written by the tasks
    batch:<id>:errors       hash asset id -> error (JSON) of a failure no record may hold
    batch:<id>:meta         hash total, created; read by ``enqueue --wait`` and ``status``
    batch:<id>:inflight     hash asset id -> deadline and asset, for the sweepers (``sweep``)
    batch:<id>:sent         how many of the batch's assets the broker took (``loss``)
    sending:<batch>         held (PX, renewed) while the batch's enqueuer sends it
    recovery:<batch>        held while one process publishes again what Redis lost (``loss``)
    rescue                  whose turn it is to look at the batches' journals (``journal``)
    batches                 sorted set of the batches the sweepers look at, by creation time

Times inside scripts come from Redis ``TIME`` so that workers on machines with skewed clocks
still agree on leases and rates.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from archiver.drivers.renewal import Renewer, releaser
from archiver.errors import CoordinationError
from archiver.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "archiver:"
BATCHES = f"{PREFIX}batches"  # open batches, for the sweepers (``sweep``)
T = TypeVar("T")

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A claim that is gone while its holder still works (a Redis that lost its data, or a lease
# that lapsed with nobody taking it since) is taken back; one another worker took is left.
_RENEW = """
local token = redis.call('GET', KEYS[1])
if token == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not token then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Returns 0 when a slot was taken, else the milliseconds to wait (-1: full, poll again).
_ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return paused end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
local interval = tonumber(ARGV[4])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat > now then return tat - now end
  redis.call('SET', KEYS[2], now + interval, 'PX', interval + 1000)
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 0
"""
_RENEW_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
"""
# A pause only ever grows: a shorter Retry-After must not cut a longer one short.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 1
"""


def connect(settings: Settings, connect_timeout: float = 10) -> redis.Redis:
    """A client for the coordination Redis (``celery.redis_url``, else the broker)."""
    return redis.Redis.from_url(settings.celery.coordination_url, decode_responses=True,
                                socket_timeout=30, socket_connect_timeout=connect_timeout,
                                health_check_interval=30)


def guarded(call: Callable[[], T]) -> T:
    """Run one Redis call, mapping redis-py's errors into the error tree (retryable)."""
    try:
        return call()
    except redis.RedisError as exc:
        raise CoordinationError(f"redis: {type(exc).__name__}: {exc}") from exc


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def holder(pid: int) -> str:
    """The start of the claim tokens that process ``pid`` of this machine takes."""
    return f"{socket.gethostname()}:{pid}:"


class Lease:
    """A held claim on one asset; ``release`` gives it up only if it is still ours."""

    def __init__(self, claims: Claims, key: str, token: str) -> None:
        self._claims = claims
        self.key = key
        self.token = token
        self.released = False

    def renew(self) -> object:
        """Extend the lease (take it back if Redis lost it) unless it was given up."""
        if self.released:
            return 0
        ms = str(_ms(self._claims.ttl))
        return self._claims.client.eval(_RENEW, 1, self.key, self.token, ms)

    def release(self) -> None:
        """Give the claim up, now or as soon as Redis answers again (never raises)."""
        self.released = True  # a renewal already under way must not take it back
        self._claims.renewer.remove(self.key)
        releaser.release(lambda: self._claims.client.eval(_RELEASE, 1, self.key, self.token),
                         self._claims.ttl)


# What a Claims lease holds: an asset being archived, a batch being sent or recovered.
CLAIM, SENDING, RECOVERY = "claim:", "sending:", "recovery:"


def lease_key(kind: str, name: str) -> str:
    """The Redis key of the ``kind`` lease on ``name`` (``archiver:claim:<asset id>``)."""
    return f"{PREFIX}{kind}{name}"


class Claims:
    """One worker at a time per asset: ``SET claim:<id> NX PX ttl``, renewed while held.
    Another ``kind`` holds something else the same way: a batch being sent
    (``sending:<batch>``) or recovered (``recovery:<batch>``, see ``loss``)."""

    def __init__(self, client: redis.Redis, ttl: float, kind: str = CLAIM) -> None:
        self.client = client
        self.ttl = ttl
        self.kind = kind
        self.renewer = Renewer(ttl / 4)

    def acquire(self, asset_id: str) -> Lease | None:
        """The lease on ``asset_id``, or None when another worker holds it."""
        key = lease_key(self.kind, asset_id)
        token = holder(os.getpid()) + secrets.token_hex(8)  # whose: see sweep.release_dead
        if not guarded(lambda: self.client.set(key, token, nx=True, px=_ms(self.ttl))):
            return None
        lease = Lease(self, key, token)
        self.renewer.add(key, lease.renew)
        return lease

    def seconds_left(self, asset_id: str) -> float:
        """How long the current holder's lease still runs (0 when free)."""
        left = guarded(lambda: self.client.pttl(lease_key(self.kind, asset_id)))
        return max(0.0, int(left) / 1000)

    def held(self) -> int:
        """Assets being archived right now, across all workers."""
        return sum(1 for _ in self.client.scan_iter(lease_key(self.kind, "*"), count=1000))


class Deliveries:
    """Counts starts of an asset that did not finish cleanly (the worker died): after
    ``max_deliveries`` the asset is failed instead of killing yet another worker."""

    def __init__(self, client: redis.Redis, ttl: float) -> None:
        self.client = client
        self.ttl = ttl

    def start(self, asset_id: str) -> int:
        key = f"{PREFIX}deliveries:{asset_id}"
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.pexpire(key, _ms(self.ttl))
        return int(guarded(pipe.execute)[0])

    def finish(self, asset_id: str) -> None:
        guarded(lambda: self.client.delete(f"{PREFIX}deliveries:{asset_id}"))


class RedisHostLimiter:
    """HostLimiter whose caps, rates and pauses hold across every process sharing the Redis.

    A slot is a member of the host's sorted set scored by its lease deadline; a holder that
    dies stops renewing, so its slot frees itself after ``host_slot_ttl``.
    """

    POLL = 0.05  # seconds between tries while a host is full (jittered)

    def __init__(self, client: redis.Redis, settings: Settings,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.fs = settings.fetch
        self.slot_ttl = settings.celery.host_slot_ttl
        self.renewer = Renewer(self.slot_ttl / 3)
        self._sleep = sleep
        self._acquire = client.register_script(_ACQUIRE_SLOT)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        host = host.lower()
        rule = self.fs.rule_for(host)
        slots = f"{PREFIX}host:{host}:slots"
        keys = [slots, f"{PREFIX}host:{host}:rate", f"{PREFIX}pause:{host}"]
        token = secrets.token_hex(8)
        ttl = str(_ms(self.slot_ttl))
        args: list[str | int] = [token, rule.max_concurrency, ttl,
                                 _ms(1.0 / rule.rate) if rule.rate else 0]
        while True:
            wait = int(guarded(lambda: self._acquire(keys=keys, args=args)))
            if wait == 0:
                break
            seconds = wait / 1000 if wait > 0 else self.POLL
            self._sleep(seconds * random.uniform(1.0, 1.2))
        name = f"{slots}:{token}"
        self.renewer.add(name, lambda: self.client.eval(_RENEW_SLOT, 1, slots, token, ttl))
        try:
            yield
        finally:
            self.renewer.remove(name)
            releaser.release(lambda: self.client.zrem(slots, token), self.slot_ttl)

    def pause(self, host: str, seconds: float) -> None:
        if seconds <= 0:
            return
        key = f"{PREFIX}pause:{host.lower()}"
        guarded(lambda: self.client.eval(_PAUSE, 1, key, _ms(seconds), str(time.time())))


def paused_hosts(client: redis.Redis) -> dict[str, float]:
    """Hosts paused now across all workers, with the seconds left."""
    out: dict[str, float] = {}
    for key in client.scan_iter(f"{PREFIX}pause:*", count=1000):
        left = int(client.pttl(key))
        if left > 0:
            out[key[len(f"{PREFIX}pause:"):]] = left / 1000
    return out


class Batches:
    """Per-enqueue progress: tasks write each asset's final status, enqueuers read counts."""

    FINAL = ("archived", "failed", "skipped")

    def __init__(self, client: redis.Redis, ttl: float) -> None:
        self.client = client
        self.ttl = _ms(ttl)

    def start(self, batch: str, total: int) -> None:
        key = f"{PREFIX}batch:{batch}:meta"
        now = time.time()
        pipe = self.client.pipeline()
        pipe.hset(key, mapping={"total": total, "created": now})
        pipe.pexpire(key, self.ttl)
        pipe.zadd(BATCHES, {batch: now})
        pipe.zremrangebyscore(BATCHES, "-inf", now - self.ttl / 1000)  # their keys expired
        guarded(pipe.execute)

    def report(self, batch: str, asset_id: str, status: str,
               error: dict[str, Any] | None = None) -> None:
        """The asset's final status, with the error when the store may not have its record
        (the store was missing or another fleet's)."""
        key = f"{PREFIX}batch:{batch}"
        pipe = self.client.pipeline()
        if error is not None:
            pipe.hset(f"{key}:errors", asset_id, json.dumps(error))
            pipe.pexpire(f"{key}:errors", self.ttl)
        pipe.hset(key, asset_id, status)
        pipe.pexpire(key, self.ttl)
        pipe.hdel(f"{key}:inflight", asset_id)  # final: nothing for the sweepers to do
        guarded(pipe.execute)

    def restore(self, batch: str, statuses: dict[str, str]) -> None:
        """Final statuses read from the assets' records, written back after Redis lost the
        reports (``loss``), so that the batch finishes."""
        if not statuses:
            return
        key = f"{PREFIX}batch:{batch}"
        pipe = self.client.pipeline()
        mapping: dict[Any, Any] = dict(statuses)
        pipe.hset(key, mapping=mapping)
        pipe.pexpire(key, self.ttl)
        pipe.hdel(f"{key}:inflight", *statuses)
        guarded(pipe.execute)

    def errors(self, batch: str) -> dict[str, dict[str, Any]]:
        """The errors reported with final statuses of ``batch``, by asset id."""
        raw = guarded(lambda: self.client.hgetall(f"{PREFIX}batch:{batch}:errors"))
        return {str(k): json.loads(v) for k, v in raw.items()}

    def progress(self, batch: str) -> Counter[str]:
        """Final statuses reported so far for ``batch``, counted."""
        return Counter(self.statuses(batch).values())

    def statuses(self, batch: str) -> dict[str, str]:
        """Final statuses reported so far for ``batch``, by asset id."""
        raw = guarded(lambda: self.client.hgetall(f"{PREFIX}batch:{batch}"))
        return {str(k): str(v) for k, v in raw.items()}


def queue_depths(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue. kombu keeps one list per priority step; the default step
    is the bare queue name and the others are ``<queue>\\x06\\x16<n>``."""
    out: dict[str, int] = {}
    for queue in queues:
        pipe = client.pipeline()
        for suffix in ("", *(f"\x06\x16{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9))):
            pipe.llen(queue + suffix)
        out[queue] = sum(int(n) for n in guarded(pipe.execute))
    return out


def unacked(client: redis.Redis) -> int:
    """Messages delivered to workers and not yet acknowledged (kombu's unacked index), which
    includes retries waiting for their countdown."""
    return int(guarded(lambda: client.zcard("unacked_index")))


def status_snapshot(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    """What ``archiver status`` prints from Redis."""
    c = settings.celery
    return {
        "queues": queue_depths(client, [c.media_queue, c.video_queue]),
        "unacked": unacked(client),
        "in_flight": guarded(lambda: Claims(client, c.claim_ttl).held()),
        "paused": guarded(lambda: paused_hosts(client)),
    }
