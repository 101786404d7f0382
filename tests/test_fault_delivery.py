"""Task delivery under dependency faults, with real processes: two prefork ``celery worker``
processes, a redis-server killed and restarted on the same port and AOF directory, moto's S3
server behind a TCP proxy that is cut, and ``archiver enqueue --wait`` running throughout.

Each test asserts the outcome after the fault clears, with no manual step: every asset
archived exactly once, no ``coordination``/``redelivered``/``store-unavailable`` failure, no
delivery counter left behind, and the enqueuer exits 0."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from archiver.drivers.coordination import Batches
from archiver.drivers.enqueue import batch_errors, enqueue_plan, send, wait_for
from archiver.drivers.job import plan_paths
from archiver.drivers.journal import journaled
from archiver.errors import BucketMissing, CoordinationError
from archiver.manifest import Manifest
from archiver.models import Asset, asset_id
from archiver.settings import Settings, load_settings
from archiver.store import open_store
from archiver.store.s3 import S3Store
from tests.support.faults import TcpProxy
from tests.support.fleet import media_body
from tests.support.origin import OriginServer, Response
from tests.support.services import RedisServer
from tests.support.workers import (
    FAST,
    Workers,
    run_cli,
    start_cli,
    wait_until,
    worker_env,
    write_article,
)

# A test's own ceilings (its waits, ``enqueue --timeout 150``) end it first, with the
# enqueuer's output and the workers' logs, not pytest-timeout's 120 s.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]



@dataclass
class Fleet:
    env: dict[str, str]
    redis: RedisServer
    workers: Workers
    store_url: str

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[TcpProxy]:
    p = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1])).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def fleet(proxy: TcpProxy, origin_server: OriginServer) -> Iterator[Fleet]:
    """Two prefork workers (2 children each) on a private redis-server with AOF, reaching a
    fresh bucket through the proxy; shared by the module's tests (each checks its own assets,
    and each fault is cleared before it ends)."""
    server = RedisServer(aof=True).start()
    store_url = f"s3://fault-{uuid.uuid4().hex[:12]}/archive"
    env = worker_env(server.url, proxy.url, store_url, origin_server, **FAST)
    _ensure_bucket(env)
    pool = Workers()
    try:
        for name in ("w1", "w2"):
            pool.start(name, env, pool="prefork", concurrency=2)
        yield Fleet(env, server, pool, store_url)
    finally:
        pool.stop_all()
        server.close()


@pytest.fixture(autouse=True)
def _aws(aws_env: str) -> None:
    """The test itself reads the store too (moto's dummy credentials)."""


def _ensure_bucket(env: dict[str, str]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            mp.setenv(name, env[name])
        with open_store(load_settings(environ=env).store) as store:
            assert isinstance(store, S3Store)
            store.ensure_bucket()


def _articles(origin: OriginServer, folder: Path, n: int, delay: float) -> dict[str, bytes]:
    """``n`` distinct JPEGs, each answering after ``delay`` s, cited directly (no proxy route:
    a second request would then be legitimate)."""
    folder.mkdir()
    bodies, urls = {}, []
    for i in range(n):
        path = f"/fault/{uuid.uuid4().hex[:8]}_{i}.jpg"
        bodies[path] = media_body(i, 2000)  # distinct bytes in every test
        origin.add(path, Response(body=bodies[path], content_type=None, delay=delay))
        urls.append(f"http://zkres1.myzaker.com{path}")
    for start in range(0, n, 5):
        article = write_article(folder, f"f{start}", urls[start:start + 5])
        article.write_text(article.read_text(encoding="utf-8").replace(
            "https://cors.zfour.workers.dev/?", ""), encoding="utf-8")
    return bodies


def _summary(out: str, event: str = "summary") -> dict[str, object]:
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return next(e for e in events if e["event"] == event)


def _check(fleet: Fleet, bodies: dict[str, bytes], origin: OriginServer) -> None:
    """Every asset archived with its bytes, each object stored once, nothing left over."""
    with open_store(load_settings(environ=fleet.env).store) as store:
        manifest = Manifest(store)
        records = [manifest.load(asset_id(f"http://zkres1.myzaker.com{p}")) for p in bodies]
        keys = [o.key.rsplit("/", 1)[-1] for o in store.list("media/")]
    assert all(r is not None for r in records)
    assert sorted(r.status for r in records if r) == ["archived"] * len(bodies), \
        [(r.origin, r.error) for r in records if r and r.status != "archived"]
    shas = {hashlib.sha256(b).hexdigest() for b in bodies.values()}
    assert {r.sha256 for r in records if r} == shas
    assert sorted(k[:64] for k in keys if k[:64] in shas) == sorted(shas)  # each stored once
    left = fleet.client().keys("archiver:deliveries:*")
    assert not left, f"delivery counters left behind: {left}"
    # The archive itself is exactly-once; a fetch may repeat only where a download was
    # cut off mid-flight (none here: the faults hit Redis and S3, not the workers).
    assert all(origin.hits[path] <= 2 for path in bodies)


def test_redis_restarts_mid_run_lose_nothing(fleet: Fleet, origin: OriginServer,
                                             tmp_path: Path) -> None:
    bodies = _articles(origin, tmp_path / "a", 24, delay=0.6)
    run = start_cli(["enqueue", str(tmp_path / "a"), "--wait", "--timeout", "150",
                     "--format", "jsonl"], fleet.env)
    # Two outages while downloads run: a clean shutdown, then a crash (AOF everysec: what
    # Redis took in its last second, maybe messages of the batch, is lost; ``loss``).
    for sig, served in ((signal.SIGTERM, 4), (signal.SIGKILL, 12)):
        wait_until(lambda n=served: sum(origin.hits[p] for p in bodies) >= n, timeout=60)
        fleet.redis.kill(sig)
        time.sleep(4)
        fleet.redis.start()
    out, err = run.communicate(timeout=170)
    fleet.workers.print_logs()
    assert run.returncode == 0, f"{out}\n{err}"
    summary = _summary(out)
    assert summary["archived"] == len(bodies) and summary["failed"] == 0, summary
    _check(fleet, bodies, origin)


def test_redis_losing_its_data_mid_run_loses_nothing(fleet: Fleet, origin: OriginServer,
                                                     tmp_path: Path) -> None:
    """Redis restarted empty (its AOF gone) while most messages wait in the queue: no worker
    ever started them, so only ``enqueue --wait`` knows them, and publishes them again."""
    bodies = _articles(origin, tmp_path / "a", 24, delay=0.6)
    run = start_cli(["enqueue", str(tmp_path / "a"), "--wait", "--timeout", "150",
                     "--format", "jsonl"], fleet.env)
    wait_until(lambda: sum(origin.hits[p] for p in bodies) >= 6, timeout=60, every=0.02)
    in_flight = sum(1 for p in origin.active.values() if p in bodies)
    fleet.redis.wipe_restart(down=2)
    back = time.monotonic()
    out, err = run.communicate(timeout=170)
    converged = time.monotonic() - back
    fleet.workers.print_logs()
    print(f"converged {converged:.1f}s after Redis came back empty ({in_flight} in flight)")
    assert run.returncode == 0, f"{out}\n{err}"
    assert "Redis lost data" in err, err
    # Published again by the enqueuer, or by a worker that took the batch's recovery first.
    logs = err + "".join(w.log() for w in fleet.workers.started)
    assert "again after Redis lost them" in logs, err
    summary = _summary(out)
    assert summary["archived"] == len(bodies) and summary["failed"] == 0, summary
    _check(fleet, bodies, origin)
    # Fetched again only where the wipe caught a download in flight (its claim was gone).
    assert sum(origin.hits[p] for p in bodies) - len(bodies) <= in_flight
    assert converged < 60


def test_redis_losing_its_data_after_a_plain_enqueue_loses_nothing(
        fleet: Fleet, origin: OriginServer, tmp_path: Path) -> None:
    """``archiver enqueue`` without ``--wait`` has exited when Redis restarts empty with most
    messages waiting in the queue: nobody waits on the batch, no worker started those
    messages. The workers read the batch's journal from the store and publish them again,
    with no further command."""
    bodies = _articles(origin, tmp_path / "a", 24, delay=0.6)
    done = run_cli(["enqueue", str(tmp_path / "a"), "--format", "jsonl"], fleet.env)
    assert done.returncode == 0, done.stdout + done.stderr
    sent = _summary(done.stdout, "enqueued")
    assert sent["enqueued"] == len(bodies), done.stdout
    with open_store(load_settings(environ=fleet.env).store) as store:
        assert sent["batch"] in journaled(store)  # written before the first message
    wait_until(lambda: sum(origin.hits[p] for p in bodies) >= 6, timeout=60, every=0.02)
    in_flight = sum(1 for p in origin.active.values() if p in bodies)
    queued = fleet.client().llen("media")
    fleet.redis.wipe_restart(down=2)
    back = time.monotonic()
    wait_until(lambda: _archived(fleet, bodies) == len(bodies), timeout=90, every=0.2)
    converged = time.monotonic() - back
    fleet.workers.print_logs()
    print(f"plain enqueue: {queued} messages queued were lost; all archived {converged:.1f}s "
          f"after Redis came back empty ({in_flight} in flight)")
    assert queued >= 12, queued  # most of the batch was waiting when Redis lost it
    _check(fleet, bodies, origin)
    assert sum(origin.hits[p] for p in bodies) - len(bodies) <= in_flight
    logs = "".join(w.log() for w in fleet.workers.started)
    assert "again after Redis lost them" in logs, logs
    # Finished: its journal is removed by a later round (the listing stays short).
    with open_store(load_settings(environ=fleet.env).store) as store:
        wait_until(lambda: sent["batch"] not in journaled(store), timeout=20, every=0.2)


def _archived(fleet: Fleet, bodies: dict[str, bytes]) -> int:
    with open_store(load_settings(environ=fleet.env).store) as store:
        manifest = Manifest(store)
        records = [manifest.load(asset_id(f"http://zkres1.myzaker.com{p}")) for p in bodies]
    return sum(1 for r in records if r is not None and r.status == "archived")


def test_messages_a_killed_worker_held_unstarted_come_back_within_seconds(
        fleet: Fleet, origin: OriginServer, tmp_path: Path) -> None:
    """A worker's main process SIGKILLed holding messages it took but had not started (its one
    pool slot busy with a slow download, three more prefetched): only the broker's unacked
    set knows them, which gives them back after the visibility timeout (74 minutes by
    default). The main process marked them in flight as it received them; once it is dead
    nobody renews them and the sweepers publish them again within seconds."""
    n = 4  # one running, three prefetched: nothing left in its queue for anyone else
    bodies = _articles(origin, tmp_path / "a", n, delay=5.0)
    held = {**fleet.env, "ARCHIVER_CELERY__MEDIA_QUEUE": "held",
            "ARCHIVER_CELERY__PREFETCH_MULTIPLIER": str(n)}
    victim = fleet.workers.start("held", held, pool="prefork", concurrency=1, queues="held")
    settings = load_settings(environ=fleet.env)
    _scans, plan = plan_paths([str(tmp_path / "a")], load_settings(environ=held))
    sent = enqueue_plan(plan, load_settings(environ=held))
    client = fleet.client()
    wait_until(lambda: client.llen("held") == 0
               and any(p in bodies for p in origin.active.values()), timeout=30, every=0.05)
    wait_until(lambda: victim.log().count("] received") >= n, timeout=10)
    victim.kill_main()
    killed = time.monotonic()
    counts = wait_for(sent.batch, sent.enqueued, settings, timeout=60)
    recovered = time.monotonic() - killed
    print(f"messages held by a killed worker recovered in {recovered:.1f}s")
    assert counts == {"archived": n}, (counts, recovered)
    assert recovered < 60 < settings.celery.effective_visibility_timeout
    _check(fleet, bodies, origin)
    # The download the kill left running (its orphaned pool process) was fetched once more at
    # most; the messages it held were never started, so fetched once.
    assert sum(origin.hits[p] for p in bodies) <= n + 1


def test_messages_a_worker_held_unstarted_when_redis_lost_its_data_come_back(
        fleet: Fleet, origin: OriginServer, tmp_path: Path) -> None:
    """A worker holding prefetched messages (one slot busy on a 5 s download) loses its
    connection when Redis restarts empty: it drops them and gives them back to a Redis that
    is down, then empty. Nothing names them any more but the in-flight entries it marked on
    receipt, which it no longer renews; they lapse and are published again within seconds
    (renewed for dropped messages, they kept the assets waiting for the 74-minute visibility
    timeout)."""
    n = 4
    bodies = _articles(origin, tmp_path / "a", n, delay=5.0)
    held = {**fleet.env, "ARCHIVER_CELERY__MEDIA_QUEUE": "held2",
            "ARCHIVER_CELERY__PREFETCH_MULTIPLIER": str(n)}
    worker = fleet.workers.start("held2", held, pool="prefork", concurrency=1, queues="held2")
    _scans, plan = plan_paths([str(tmp_path / "a")], load_settings(environ=held))
    enqueue_plan(plan, load_settings(environ=held))
    client = fleet.client()
    wait_until(lambda: client.llen("held2") == 0
               and any(p in bodies for p in origin.active.values()), timeout=30, every=0.05)
    wait_until(lambda: worker.log().count("] received") >= n, timeout=10)
    fleet.redis.wipe_restart(down=2)
    back = time.monotonic()
    wait_until(lambda: _archived(fleet, bodies) == n, timeout=90, every=0.2)
    print(f"messages a worker held when Redis lost its data archived "
          f"{time.monotonic() - back:.1f}s after it came back")
    worker.stop()
    _check(fleet, bodies, origin)


def test_s3_outage_mid_run_retries_without_counting_deliveries(
        fleet: Fleet, proxy: TcpProxy, origin: OriginServer, tmp_path: Path) -> None:
    bodies = _articles(origin, tmp_path / "a", 20, delay=0.5)
    run = start_cli(["enqueue", str(tmp_path / "a"), "--wait", "--timeout", "150",
                     "--format", "jsonl"], fleet.env)
    wait_until(lambda: sum(origin.hits[p] for p in bodies) >= 4, timeout=60)
    proxy.cut()
    time.sleep(8)  # every worker child hits it: puts, record saves, record loads
    proxy.restore()
    out, err = run.communicate(timeout=170)
    fleet.workers.print_logs()
    assert run.returncode == 0, f"{out}\n{err}"
    summary = _summary(out)
    assert summary["archived"] == len(bodies) and summary["failed"] == 0, summary
    logs = "".join(w.log() for w in fleet.workers.started)
    assert "store-unavailable" in logs or "unavailable" in logs  # the outage was seen
    _check(fleet, bodies, origin)


def test_worker_refuses_another_stores_tasks_and_enqueue_says_so(
        fleet: Fleet, origin: OriginServer, tmp_path: Path) -> None:
    bodies = _articles(origin, tmp_path / "a", 5, delay=0.0)
    # The workers announce the store they serve, on a heartbeat with a TTL.
    announced = {fleet.client().get(k) for k in fleet.client().keys("archiver:worker:*")}
    assert announced == {fleet.store_url}
    other = f"s3://other-{uuid.uuid4().hex[:10]}/b"
    with open_store(load_settings(environ={**fleet.env, "ARCHIVER_STORE_URL": other}).store
                    ) as store:
        assert isinstance(store, S3Store)
        store.ensure_bucket()

    done = run_cli(["enqueue", str(tmp_path / "a"), "--store", other, "--wait",
                    "--timeout", "60"], fleet.env)
    assert done.returncode == 1, done.stdout + done.stderr
    # Both workers, or one whose announcement (1 s apart here, 3 s to live) lapsed on a busy
    # machine: either way the warning names the store they serve and the refusal.
    assert re.search(rf"no live worker serves {re.escape(other)}: the (live one serves|2 live "
                     rf"ones serve) {re.escape(fleet.store_url)} and will refuse these tasks "
                     rf"as wrong-store", done.stderr), done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("archived 0, failed 5"), done.stdout
    assert any(line.startswith("failed   wrong-store") for line in lines), done.stdout
    assert not any(origin.hits[p] for p in bodies)  # nothing fetched, nothing stored anywhere

    # Enqueued to the fleet's own store: no warning, everything archived.
    right = run_cli(["enqueue", str(tmp_path / "a"), "--wait", "--timeout", "60"], fleet.env)
    assert right.returncode == 0 and "warning" not in right.stderr, right.stderr
    _check(fleet, bodies, origin)


def test_missing_bucket_at_run_time_fails_each_asset_with_its_code(
        fleet: Fleet, origin: OriginServer, tmp_path: Path) -> None:
    bodies = _articles(origin, tmp_path / "a", 4, delay=0.0)
    settings = load_settings(environ=fleet.env)
    _scans, plan = plan_paths([str(tmp_path / "a")], settings)
    with open_store(settings.store) as store:
        assert isinstance(store, S3Store)
        # Gone after the workers' startup check (emptied first: earlier tests filled it).
        listed = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
        if listed:
            store.client.delete_objects(Bucket=store.bucket, Delete={
                "Objects": [{"Key": o["Key"]} for o in listed]})
        store.client.delete_bucket(Bucket=store.bucket)
    # enqueue cannot write the batch's journal: it sends nothing, and says why.
    with pytest.raises(BucketMissing):
        enqueue_plan(plan, settings)
    assert fleet.client().llen("media") == 0
    # Tasks already queued when the bucket went (sent as enqueue sends them).
    batch = uuid.uuid4().hex
    Batches(fleet.client(), settings.celery.batch_ttl).start(batch, len(plan.todo))
    send(plan.todo, settings, batch=batch)
    counts = wait_for(batch, len(plan.todo), settings, timeout=60)
    assert counts == {"failed": 4}
    errors = batch_errors(batch, settings)
    assert {e["code"] for e in errors.values()} == {"no-such-bucket"}
    assert len(errors) == 4 and all(store_bucket_named(e, settings) for e in errors.values())
    assert not fleet.client().keys("archiver:deliveries:*")  # not taken for worker deaths
    assert sum(origin.hits[p] for p in bodies) <= 4  # no retries of a permanent error
    _ensure_bucket(fleet.env)  # back for whatever runs next on this fleet


def store_bucket_named(error: dict[str, object], settings: Settings) -> bool:
    bucket = settings.store.url.split("/")[2]
    return f"'{bucket}'" in str(error["message"])


def test_tasks_sent_while_redis_restarts_reach_the_queue() -> None:
    server = RedisServer(aof=True).start()
    try:
        settings = load_settings(environ={"ARCHIVER_BROKER_URL": server.url,
                                          "ARCHIVER_STORE_URL": "s3://b/p"})
        assets = [Asset(origin=f"http://zkres1.myzaker.com/s/{i}.jpg", kind="image",
                        urls=(f"http://zkres1.myzaker.com/s/{i}.jpg",)) for i in range(3)]
        server.kill(signal.SIGKILL)
        restart = threading.Timer(2.0, server.start)
        restart.start()
        sent = send(assets, settings, batch="b1", patience=30)  # waits for Redis
        restart.join()
        assert sent == {"media": 3}
        messages = fleet_client(server).lrange("media", 0, -1)
        bodies = [json.loads(m)["headers"]["argsrepr"] for m in messages]
        assert sorted(bodies) == sorted(a.id for a in assets)
        # Without patience a broker that does not answer is a clean error, not a traceback.
        server.kill(signal.SIGKILL)
        with pytest.raises(CoordinationError):
            send(assets, settings, batch="b2")
    finally:
        server.close()


def fleet_client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)
