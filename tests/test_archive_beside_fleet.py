"""``archiver archive`` beside a fleet working on the same assets: with the broker configured
it takes the workers' asset claims, so every asset is fetched once between them; with Redis
configured but not answering it says that it takes none, and archives anyway."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from archiver.drivers.enqueue import enqueue_plan, wait_for
from archiver.drivers.job import plan_paths
from archiver.settings import load_settings
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.services import free_port
from tests.support.workers import (
    Workers,
    run_cli,
    start_cli,
    worker_env,
    workers,  # noqa: F401  (the module-scoped fixture)
    write_article,
)

ASSETS = 12


def _article(folder: Path, origin: OriginServer, drip: float) -> list[str]:
    paths = [f"/beside/{n}.jpg" for n in range(ASSETS)]
    jpeg = media.jpeg(width=120, height=90)
    for n, path in enumerate(paths):
        origin.add(path, Response(body=jpeg + bytes([n]) * 8192, content_type="image/jpeg",
                                  chunk=4096, drip=drip))
    write_article(folder, "beside", [f"http://zkres1.myzaker.com{p}" for p in paths])
    return paths


@pytest.mark.parametrize("processes", ["1", "2"])  # runner.processes: each takes claims
def test_archive_and_workers_fetch_each_asset_once(
        workers: Workers, redis_url: str, origin: OriginServer, tmp_path: Path,  # noqa: F811
        processes: str) -> None:
    store = str(tmp_path / "archive")
    env = worker_env(redis_url, "http://127.0.0.1:9", store, origin,
                     ARCHIVER_RUNNER__PROCESSES=processes)
    settings = load_settings(environ=env)
    redis.Redis.from_url(redis_url).flushdb()
    paths = _article(tmp_path, origin, drip=0.3)
    _scans, plan = plan_paths([str(tmp_path)], settings)

    fleet = workers.start(f"fleet-{processes}", env, pool="threads", concurrency=2)
    try:
        sent = enqueue_plan(plan, settings)
        inproc = start_cli(["archive", str(tmp_path), "-j", "2", "--no-progress"], env)
        out, err = inproc.communicate(timeout=120)
        counts = wait_for(sent.batch, sent.enqueued, settings, timeout=60)
    finally:
        fleet.stop()  # this store's fleet: the next case has another store
    assert inproc.returncode == 0, err
    assert "claims" not in err  # it took them: no warning
    assert counts == {"archived": ASSETS}
    hits = {p: origin.hits[p] for p in paths}
    assert hits == dict.fromkeys(paths, 1), hits
    assert "failed 0, skipped 0" in out  # some may have been archived before it planned


def test_archive_says_it_takes_no_claims_when_redis_does_not_answer(
        origin: OriginServer, tmp_path: Path) -> None:
    env = worker_env(f"redis://127.0.0.1:{free_port()}/0", "http://127.0.0.1:9",
                     str(tmp_path / "archive"), origin)
    paths = _article(tmp_path, origin, drip=0)
    done = run_cli(["archive", str(tmp_path), "--no-progress"], env)
    assert done.returncode == 0, done.stderr
    assert "does not answer" in done.stderr and "taking no asset claims" in done.stderr
    assert all(origin.hits[p] == 1 for p in paths)
    # "on" insists: no Redis, no run.
    strict = run_cli(["archive", str(tmp_path), "--no-progress"],
                     {**env, "ARCHIVER_RUNNER__CLAIMS": "on"})
    assert strict.returncode != 0 and "redis" in strict.stderr.lower()
