"""The enqueue rate (issue 11, item 5: at least 10,000 assets/s): ``enqueue.send`` of N
synthetic assets into a private redis-server (real kombu publishing, in this process), against
the same assets sent the way enqueue sent them before (``Celery.send_task`` per message, in the
same kombu pipeline batches), in alternating runs of one process, so both see the same load.

Usage: python -m bench.enqueue [--assets 20000] [--runs 3] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from archiver.drivers.enqueue import _batched, send
from archiver.drivers.fleet import store_identity
from archiver.drivers.tasks import make_app, queue_for, task_for
from archiver.models import Asset, Citation
from archiver.settings import Settings, load_settings
from bench.report import load_text, put_section
from tests.support.services import redis_server

Sender = Callable[[Sequence[Asset], Settings, str, Celery], None]


def synthetic_assets(n: int) -> list[Asset]:
    """ZAKER-like image assets: one proxy route, the URL as written, one citing article."""
    return [Asset(origin=f"http://zkres1.myzaker.com/bench/{i:06d}_1024.jpg", kind="image",
                  proxies=("https://cors.zfour.workers.dev/?",),
                  urls=(f"https://cors.zfour.workers.dev/?http://zkres1.myzaker.com/bench/"
                        f"{i:06d}_1024.jpg",),
                  citations=(Citation(f"zaker-{i // 8:06d}.md", ("img.data-original",)),))
            for i in range(n)]


def send_new(assets: Sequence[Asset], settings: Settings, batch: str, app: Celery) -> None:
    send(assets, settings, batch=batch, app=app)


def send_task_each(assets: Sequence[Asset], settings: Settings, batch: str,
                   app: Celery) -> None:
    """enqueue.send's publishing before issue 11: ``send_task`` per message (queues bound and
    declared once per chunk, argsrepr given), ``enqueue_batch`` messages per pipeline."""
    store = store_identity(settings.store)
    size = settings.celery.enqueue_batch
    for start in range(0, len(assets), size):
        chunk = assets[start:start + size]
        with app.producer_or_acquire() as producer, _batched(producer, len(chunk)):
            bound: dict[str, Any] = {}
            for asset in chunk:
                name, queue = task_for(asset.kind), queue_for(asset.kind, settings)
                if queue not in bound:
                    bound[queue] = app.amqp.queues[queue].bind(producer.channel)
                    producer.maybe_declare(bound[queue])
                app.send_task(name, args=(asset.to_dict(), batch), kwargs={"store": store},
                              queue=queue, producer=producer, argsrepr=asset.id,
                              kwargsrepr="", declare=[bound[queue]])


def timed(sender: Sender, assets: Sequence[Asset], settings: Settings, app: Celery,
          client: redis.Redis) -> tuple[float, float]:
    """Wall and CPU seconds of one send of ``assets``; checks every message reached Redis."""
    client.flushdb()
    wall, cpu = time.perf_counter(), time.process_time()
    sender(assets, settings, uuid.uuid4().hex, app)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    queued = client.llen(settings.celery.media_queue)
    assert queued == len(assets), (queued, len(assets))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    assets = synthetic_assets(args.assets)
    senders: dict[str, Sender] = {"Celery send_task per message (before)": send_task_each,
                                  "archiver.drivers.enqueue.send (now)": send_new}
    walls: dict[str, list[float]] = {label: [] for label in senders}
    cpus: dict[str, list[float]] = {label: [] for label in senders}
    with redis_server() as url:
        settings = load_settings(environ={"ARCHIVER_BROKER_URL": url})
        client = redis.Redis.from_url(url)
        with make_app(settings) as app:
            for sender in senders.values():  # warm: connections, templates, imports
                timed(sender, assets[:1000], settings, app, client)
            for _ in range(args.runs):
                for label, sender in senders.items():
                    wall, cpu = timed(sender, assets, settings, app, client)
                    walls[label].append(wall)
                    cpus[label].append(cpu)
                    print(f"{label}: {args.assets / wall:,.0f} assets/s ({wall:.2f} s, "
                          f"CPU {cpu:.2f} s)", flush=True)
        client.close()
    load_after = os.getloadavg()
    lines = [
        "## Enqueue rate (issue 11, item 5)", "",
        f"- command: `python -m bench.enqueue --assets {args.assets} --runs {args.runs}` "
        "(a private redis-server; real kombu publishing in pipelines of `celery.enqueue_batch`"
        " messages; the two ways alternate in one process)",
        "- load average (1, 5, 15 min) before: " + load_text(load_before)
        + "; after: " + load_text(load_after)
        + " (2 cores shared with other work: above 2 means a busy machine)", "",
        "| way | assets/s (median) | runs assets/s | wall s (median) | CPU us/asset (median) |",
        "|---|---|---|---|---|",
    ]
    for label in senders:
        rates = [args.assets / w for w in walls[label]]
        lines.append(f"| {label} | {statistics.median(rates):,.0f} | "
                     + ", ".join(f"{r:,.0f}" for r in rates)
                     + f" | {statistics.median(walls[label]):.2f} | "
                     f"{statistics.median(cpus[label]) / args.assets * 1e6:.0f} |")
    put_section(args.out, "enqueue", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
