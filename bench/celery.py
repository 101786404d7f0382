"""Celery path figures: enqueue rate, and worker throughput against the in-process runner.

    python -m bench.celery [--assets 50000] [--articles 150] [--latency 0.05] [-j 8]

1. Enqueue rate: ``enqueue.send`` of N synthetic assets into a private redis-server (the
   broker), assets per second.
2. Throughput on one generated corpus and the local origin (``bench.origin``, latency added),
   each run into a fresh local store: the in-process runner with -j N, then 1 and 2
   ``celery worker`` processes (threads pool, N threads each) fed by ``enqueue_plan`` and timed
   from the first send to the last record (``wait_for``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.corpus import generate
from bench.origin import LocalInternet, Options
from tests.support.services import redis_server
from tests.support.workers import Worker

ROOT = Path(__file__).resolve().parents[1]


def _settings(env: dict[str, str]) -> Any:
    from archiver.settings import load_settings

    return load_settings(environ=env)


def enqueue_rate(redis_url: str, n: int) -> dict[str, float]:
    from archiver.drivers.enqueue import send
    from archiver.drivers.tasks import make_app
    from bench.enqueue import synthetic_assets

    settings = _settings({"ARCHIVER_BROKER_URL": redis_url})
    assets = synthetic_assets(n)
    app = make_app(settings)
    started = time.perf_counter()
    sent = send(assets, settings, batch=uuid.uuid4().hex, app=app)
    elapsed = time.perf_counter() - started
    assert sum(sent.values()) == n
    return {"assets": n, "seconds": round(elapsed, 2), "assets_per_s": round(n / elapsed)}


def _worker_env(redis_url: str, store: str, net: LocalInternet, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update({
        "ARCHIVER_BROKER_URL": redis_url,
        "ARCHIVER_STORE_URL": store,
        "ARCHIVER_FETCH__CONNECT_TO": json.dumps(net.connect_to),
        "ARCHIVER_FETCH__ALLOW_PRIVATE": '["127.0.0.0/8"]',
        # The origin is local: as many connections per host as one run has threads.
        "ARCHIVER_FETCH__PER_HOST_CONCURRENCY": str(threads * 2),
        "ARCHIVER_RUNNER__CONCURRENCY": str(threads),
        # The runner does not retry failed assets at run level; neither do the workers here.
        "ARCHIVER_CELERY__MAX_RETRIES": "0",
        "PYTHONPATH": str(ROOT),
    })
    return env


def in_process(articles: Path, env: dict[str, str]) -> dict[str, float]:
    from archiver.drivers.job import plan_paths
    from archiver.drivers.runner import run
    from archiver.pipeline import build_context
    from archiver.store import open_store

    settings = _settings(env)
    _scans, plan = plan_paths([str(articles)], settings)
    with open_store(settings.store) as store, build_context(settings, store) as ctx:
        started = time.perf_counter()
        summary = run(plan.todo, ctx, recorded=plan.recorded)
        elapsed = time.perf_counter() - started
    return {"assets": summary.total, "failed": summary.failed, "seconds": round(elapsed, 2),
            "assets_per_s": round(summary.total / elapsed, 1)}


def celery_workers(articles: Path, env: dict[str, str], n_workers: int,
                   threads: int) -> dict[str, float]:
    from archiver.drivers.enqueue import enqueue_plan, wait_for
    from archiver.drivers.job import plan_paths

    settings = _settings(env)
    workers = [Worker(f"bench{i}", env, pool="threads", concurrency=threads)
               for i in range(n_workers)]
    try:
        for w in workers:
            w.wait_ready(60)
        _scans, plan = plan_paths([str(articles)], settings)
        started = time.perf_counter()
        sent = enqueue_plan(plan, settings)
        counts = wait_for(sent.batch, sent.enqueued, settings, poll=0.1, timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        for w in workers:
            w.stop()
            w.log_path.unlink(missing_ok=True)
    done = sum(counts.values())
    return {"assets": done, "failed": counts["failed"], "seconds": round(elapsed, 2),
            "assets_per_s": round(done / elapsed, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.celery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=50_000, help="assets to enqueue")
    parser.add_argument("--articles", type=int, default=150, help="articles in the corpus")
    parser.add_argument("--latency", type=float, default=0.05, help="origin latency (s)")
    parser.add_argument("-j", "--threads", type=int, default=8, help="threads per worker")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        with redis_server() as url:
            rate = enqueue_rate(url, args.assets)
            print(f"enqueue: {rate['assets']} assets in {rate['seconds']}s = "
                  f"{rate['assets_per_s']} assets/s", flush=True)
        paths = generate(args.articles, 7, work / "articles")
        print(f"corpus: {len(paths)} articles, origin latency {args.latency * 1000:.0f} ms",
              flush=True)
        with LocalInternet(Options(latency=args.latency)) as net, redis_server() as url:
            runs: list[tuple[str, int]] = [("in-process runner", 0), ("celery, 1 worker", 1),
                                           ("celery, 2 workers", 2)]
            for label, n in runs:
                store = str(work / f"store-{n}")
                env = _worker_env(url, store, net, args.threads)
                row = (in_process(work / "articles", env) if n == 0 else
                       celery_workers(work / "articles", env, n, args.threads))
                rows.append((f"{label} (-j{args.threads} each)", row))
                print(f"{rows[-1][0]:32} {row['assets']:>6} assets {row['failed']:>4} failed "
                      f"{row['seconds']:>7}s {row['assets_per_s']:>7} assets/s", flush=True)
                shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0][1]["assets_per_s"] if rows else 0
    for label, row in rows[1:]:
        print(f"{label}: {row['assets_per_s'] / base:.2f}x the in-process runner"
              if base else label, flush=True)


if __name__ == "__main__":
    main()
