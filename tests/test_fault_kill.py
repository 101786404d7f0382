"""kill -9 mid-download, with the default leases, sweep interval and visibility timeout: a
prefork child, and a worker's main process. Every asset is archived within a minute of the
kills with no manual step, the extra fetches are at most the downloads the kills cut, and the
dead worker's own messages, given back by the broker much later, change nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from archiver.drivers.coordination import holder
from archiver.drivers.enqueue import enqueue_plan, wait_for
from archiver.drivers.job import plan_paths
from archiver.manifest import Manifest
from archiver.settings import load_settings
from archiver.store import open_store
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.workers import (
    Workers,
    wait_until,
    worker_env,
    workers,  # noqa: F401  (the module-scoped fixture)
    write_article,
)

HOST = "zkres2.myzaker.com"
ASSETS = 8
RECOVERY = 60.0  # seconds from the kills to every asset archived (the README's figure)


def _give_back_unacked(client: redis.Redis) -> int:
    """What the broker does once the visibility timeout passes (kombu's restore), now: every
    unacknowledged message goes back to its queue."""
    restored = 0
    for tag, raw in client.hgetall("unacked").items():
        payload, _exchange, routing_key = json.loads(raw)
        client.lpush(routing_key, json.dumps(payload))
        client.hdel("unacked", tag)
        client.zrem("unacked_index", tag)
        restored += 1
    return restored


@pytest.mark.faults
def test_killed_child_and_killed_worker_recover_within_a_minute(
        workers: Workers, redis_url: str, origin: OriginServer, tmp_path: Path,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    env = worker_env(redis_url, "http://127.0.0.1:9", str(tmp_path / "archive"), origin,
                     ARCHIVER_FETCH__RETRIES="0")
    settings = load_settings(environ=env)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()

    paths = [f"/kill/{n}.jpg" for n in range(ASSETS)]
    jpeg = media.jpeg(width=300, height=200)
    for n, path in enumerate(paths):  # about 4 s each, each its own object
        body = jpeg + bytes([n]) * 40_000
        origin.add(path, Response(body=body, content_type="image/jpeg", chunk=4096, drip=0.4))
    write_article(tmp_path, "kill", [f"http://{HOST}{p}" for p in paths])
    _scans, plan = plan_paths([str(tmp_path / "kill.md")], settings)
    assert len(plan.todo) == ASSETS

    survivor = workers.start("survivor", env, pool="prefork", concurrency=2)
    doomed = workers.start("doomed", env, pool="threads", concurrency=2)
    sent = enqueue_plan(plan, settings)
    wait_until(lambda: origin.inflight[HOST] >= 4 and survivor.downloading_child(origin.port),
               timeout=30, every=0.05)
    child = survivor.downloading_child(origin.port)
    in_flight = origin.inflight[HOST]
    assert child is not None
    mine = holder(child)
    (claim,) = [k for k in client.scan_iter("archiver:claim:*")
                if (client.get(k) or "").startswith(mine)]
    os.kill(child, signal.SIGKILL)  # a prefork child, mid-download
    doomed.kill_main()  # a worker's main process; its threads were downloading
    killed = time.monotonic()
    # The child's parent frees its claim at once: its requeued message is not turned away.
    wait_until(lambda: not (client.get(claim) or "").startswith(mine), timeout=5)

    counts = wait_for(sent.batch, sent.enqueued, settings, timeout=RECOVERY)
    recovery = time.monotonic() - killed
    with capsys.disabled():
        print(f"\nrecovered from the kills in {recovery:.1f}s ({in_flight} downloads in flight)")
    assert counts == {"archived": ASSETS}, (counts, recovery)
    fetches = sum(origin.hits[p] for p in paths)
    assert ASSETS <= fetches <= ASSETS + in_flight
    with open_store(settings.store) as store:
        manifest = Manifest(store)
        records = [manifest.load(asset.id) for asset in plan.todo]
        assert all(r is not None and r.status == "archived" for r in records)
        assert len(list(store.list("media/"))) == ASSETS

    # The dead worker's messages come back when the visibility timeout passes: no-ops.
    assert _give_back_unacked(client) >= 2
    wait_until(lambda: client.llen("media") == 0 and client.zcard("unacked_index") == 0,
               timeout=30)
    assert sum(origin.hits[p] for p in paths) == fetches
    assert Counter(client.hvals(f"archiver:batch:{sent.batch}")) == {"archived": ASSETS}
