"""A fleet under faults, and the outcome every fault test and ``bench/chaos.py`` checks.

``Fleet``: a private redis-server with AOF (so ``redis.blink`` restarts it on the same port and
data directory), moto's S3 behind a ``TcpProxy`` (``proxy.cut()``/``restore()``: an outage
that loses no data) or a local store, and real ``celery worker`` processes (prefork, 2
children each by default) configured by environment variables as an operator would.

``serve`` puts assets on the origin (random bytes behind a JPEG start, so every body is
distinct and its sha256 known); ``converge`` polls the manifest until every asset has the
outcome it should have, then ``Outcome`` says what an operator would ask after a fault:
how many were lost, fetched twice, stored with wrong bytes or stored twice, and how long after
the fault cleared the fleet converged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from archiver.drivers.enqueue import Enqueued, enqueue_plan, wait_for
from archiver.drivers.job import plan_paths
from archiver.errors import ArchiverError
from archiver.manifest import Manifest
from archiver.manifest.records import Records
from archiver.models import Asset, asset_id
from archiver.settings import load_settings
from archiver.store import open_store
from archiver.store.base import Store
from archiver.store.s3 import S3Store
from tests.support import media
from tests.support.faults import TcpProxy
from tests.support.origin import OriginServer, Response
from tests.support.services import RedisServer
from tests.support.workers import Worker, worker_env, write_article

MEDIA_HOST = "zkres1.myzaker.com"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class Served:
    """One asset the origin serves: its path, the bytes a correct archive holds, and what a
    correct run ends with (``archived``, or the code of a permanent failure) after how many
    origin requests (a 429 then the media: 2)."""

    path: str
    body: bytes
    expect: str = "archived"
    fetches: int = 1

    @property
    def url(self) -> str:
        return f"http://{MEDIA_HOST}{self.path}"

    @property
    def id(self) -> str:
        return asset_id(self.url)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def media_body(seed: int, size: int) -> bytes:
    """A small real JPEG followed by ``size`` random bytes: sniffs as media, unique bytes."""
    return media.jpeg(16, 16, color=(seed % 256, seed // 256 % 256, 7)) + os.urandom(size)


def serve(origin: OriginServer, name: str, n: int, size: int = 20_000,
          seconds: float = 0.0) -> list[Served]:
    """``n`` assets under ``/<name>/``, each download taking about ``seconds`` (the body
    dripped in 8 pieces) so that a fault can land mid-download."""
    out = []
    for i in range(n):
        body = media_body(i, size)
        path = f"/{name}/{i:04d}_1024.jpg"
        drip = seconds / 8
        origin.add(path, Response(body=body, content_type=None,
                                  chunk=max(1, len(body) // 8) if drip else 65536, drip=drip))
        out.append(Served(path, body))
    return out


@dataclass
class Outcome:
    """What a fault left behind once the fleet converged (or the wait ran out)."""

    fault: str
    expected: int
    archived: int = 0  # assets with the outcome they should have (archived or the right code)
    lost: int = 0
    duplicate_fetches: int = 0  # origin requests beyond what one correct run makes
    wrong_bytes: int = 0  # records or objects whose bytes are not the origin's
    stored_twice: int = 0  # objects beyond one per asset (a second copy, an orphan)
    seconds: float | None = None  # from the fault cleared to converged; None: never
    in_flight: int = 0  # downloads in flight in the killed process or at an outage's start
    manual_steps: int = 0
    notes: list[str] = field(default_factory=list)

    def problems(self, within: float = 60.0) -> list[str]:
        """Everything that breaks the acceptance: empty when the row holds."""
        found = [f"{name}={value}" for name, value in (
            ("lost", self.lost), ("wrong_bytes", self.wrong_bytes),
            ("stored_twice", self.stored_twice), ("manual_steps", self.manual_steps))
            if value]
        if self.duplicate_fetches > self.in_flight:
            found.append(f"duplicate_fetches={self.duplicate_fetches} > in flight at the "
                         f"fault={self.in_flight}")
        if self.seconds is None or self.seconds > within:
            found.append(f"not converged within {within:g}s ({self.seconds})")
        return found + self.notes if found else []

    def row(self) -> dict[str, object]:
        return {"fault": self.fault, "expected": self.expected, "archived": self.archived,
                "lost": self.lost, "duplicate_fetches": self.duplicate_fetches,
                "in_flight": self.in_flight, "wrong_bytes": self.wrong_bytes,
                "stored_twice": self.stored_twice, "seconds": self.seconds,
                "manual_steps": self.manual_steps}


def _done(store: Store, s: Served) -> bool:
    # The record itself (one GET): ``Manifest(store).load`` would read every record into a
    # fresh index first, 250 x 250 GETs per pass at bench size.
    record = Records(store).load(s.id)
    if record is None:
        return False
    if s.expect == "archived":
        return record.status == "archived"
    return record.status == "failed" and (record.error or {}).get("code") == s.expect


def pending(store: Store, served: list[Served]) -> list[Served]:
    """The assets of ``served`` without the outcome they should have (yet)."""
    return [s for s in served if not _done(store, s)]


def converge(store: Store, served: list[Served], origin: OriginServer, *, fault: str,
             since: float, timeout: float = 60.0, in_flight: int = 0,
             before: Iterable[str] = ()) -> Outcome:
    """Poll the manifest until every asset has its expected outcome or ``timeout`` seconds
    after ``since`` (``time.monotonic()`` when the fault cleared) pass, then check the bytes:
    every new object under ``media/`` (those not in ``before``) must be one asset's exact
    bytes, once, and every archived record must point at its asset's bytes."""
    pending = list(served)
    last = since
    deadline = since + timeout
    while pending:
        still = []
        for s in pending:
            try:
                done = _done(store, s)
            except ArchiverError:  # the store is still down: look again
                done = False
            if done:
                last = time.monotonic()
            else:
                still.append(s)
        pending = still
        if pending and time.monotonic() >= deadline:
            break
        if pending:
            time.sleep(0.25)
    out = Outcome(fault, expected=len(served), archived=len(served) - len(pending),
                  lost=len(pending), in_flight=in_flight,
                  seconds=None if pending else round(max(0.0, last - since), 1))
    extra = {s.path: origin.hits[s.path] - s.fetches for s in served
             if origin.hits[s.path] > s.fetches}
    out.duplicate_fetches = sum(extra.values())
    if extra:
        out.notes.append(f"fetched more than once: {sorted(extra.items())[:5]}")
    _check_bytes(store, served, set(before), out)
    return out


def _check_bytes(store: Store, served: list[Served], before: set[str], out: Outcome) -> None:
    by_sha = {s.sha256: s for s in served}
    copies: dict[str, int] = {}
    for info in store.list("media/"):
        if info.key in before:
            continue
        digest = hashlib.sha256(store.get_bytes(info.key)).hexdigest()
        if digest not in by_sha or not info.key.rsplit("/", 1)[-1].startswith(digest):
            out.wrong_bytes += 1
            out.notes.append(f"object {info.key} holds bytes no asset has ({digest[:12]})")
        copies[digest] = copies.get(digest, 0) + 1
    out.stored_twice = sum(n - 1 for n in copies.values())
    manifest = Manifest(store)
    for s in served:
        record = manifest.load(s.id)
        if record is None or record.status != "archived":
            if s.expect == "archived":
                continue  # counted as lost
            out.stored_twice += copies.get(s.sha256, 0)  # failed, yet an object stayed
            continue
        if record.sha256 != s.sha256 or record.key is None:
            out.wrong_bytes += 1
            out.notes.append(f"record of {s.path} says {record.sha256}")
        elif hashlib.sha256(store.get_bytes(record.key)).hexdigest() != s.sha256:
            out.wrong_bytes += 1


def media_keys(store: Store) -> set[str]:
    return {info.key for info in store.list("media/")}


class Fleet:
    """Redis (AOF), S3 behind a proxy or a local store, and ``workers`` celery workers. Every
    process it starts it stops in ``close``."""

    def __init__(self, workdir: Path, origin: OriginServer, s3_endpoint: str, *,
                 store: str | None = None, **env: str) -> None:
        self.workdir = workdir
        self.origin = origin
        self.redis = RedisServer(aof=True).start()
        try:  # a failure (or an interrupt) from here on leaves no redis-server behind
            self._set_up(origin, s3_endpoint, store, env)
        except BaseException:
            self.redis.close()
            raise

    def _set_up(self, origin: OriginServer, s3_endpoint: str, store: str | None,
                env: dict[str, str]) -> None:
        self.proxy = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1])).start()
        self.store_url = store or f"s3://chaos-{uuid.uuid4().hex[:12]}/archive"
        for name, value in AWS.items():  # the enqueuer and the checks talk to moto too
            os.environ.setdefault(name, value)
        self.env = worker_env(self.redis.url, self.proxy.url, self.store_url, origin, **env)
        self.settings = load_settings(environ=self.env)
        self.workers: list[Worker] = []
        self._started = 0
        if self.store_url.startswith("s3://"):
            with open_store(self.settings.store) as s3:
                assert isinstance(s3, S3Store)
                s3.ensure_bucket()

    def start_workers(self, n: int = 2, *, pool: str = "prefork", concurrency: int = 2,
                      timeout: float = 60.0) -> list[Worker]:
        started = []
        for _ in range(n):
            self._started += 1
            started.append(Worker(f"chaos{self._started}", self.env, pool=pool,
                                  concurrency=concurrency))
            self.workers.append(started[-1])  # stopped by close() even if interrupted here
        for worker in started:
            worker.wait_ready(timeout)
        return started

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        with open_store(self.settings.store) as store:
            yield store

    def enqueue(self, served: list[Served], name: str, *, watch: bool = False) -> Enqueued:
        """Articles citing ``served`` (10 per article), planned and sent as one batch. With
        ``watch``, a thread then does what ``enqueue --wait`` does meanwhile: sweeps the batch
        and publishes again what a Redis that lost its data lost (``loss``)."""
        folder = self.workdir / f"articles-{name}"
        folder.mkdir(parents=True)
        urls = [s.url for s in served]
        for start in range(0, len(urls), 10):
            write_article(folder, f"{name}{start:04d}", urls[start:start + 10])
        _scans, plan = plan_paths([str(folder)], self.settings)
        assert {a.id for a in plan.assets} >= {s.id for s in served}, "the scan lost assets"
        sent = enqueue_plan(plan, self.settings)
        if watch:
            threading.Thread(target=self._watch, args=(sent, plan.todo), daemon=True).start()
        return sent

    def _watch(self, sent: Enqueued, assets: list[Asset]) -> None:
        with open_store(self.settings.store) as store:
            wait_for(sent.batch, sent.enqueued, self.settings, manifest=Manifest(store),
                     assets=assets, timeout=900)

    def busy_worker(self, timeout: float = 30.0) -> tuple[Worker, int]:
        """A worker with a download in flight, and a pool child of it that is downloading."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [w for w in self.workers if w.proc.poll() is None]
            random.shuffle(live)
            for worker in live:
                for child in worker.pool_children():
                    if worker.downloads(self.origin, [child]):
                        return worker, child
            time.sleep(0.05)
        raise AssertionError("no worker started downloading")

    def redis_wipe_restart(self, down: float = 2.0) -> None:
        """Redis loses everything (queued messages, claims, in-flight entries, statuses):
        SIGKILLed, its data files deleted, started again empty on the same port after
        ``down`` seconds. ``enqueue --wait`` publishes the lost assets again (``loss``)."""
        self.redis.wipe_restart(down)

    def in_flight(self) -> int:
        """Downloads in flight across the fleet right now."""
        return sum(w.downloads(self.origin) for w in self.workers if w.proc.poll() is None)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
            worker.log_path.unlink(missing_ok=True)
        self.proxy.stop()
        self.redis.close()
        shutil.rmtree(self.workdir / "articles", ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"----- log of worker {w.name} -----\n{w.log()}" for w in self.workers)


@contextlib.contextmanager
def running(workdir: Path, origin: OriginServer, s3_endpoint: str, *, workers: int,
            store: str | None = None, **env: str) -> Iterator[Fleet]:
    """A ``Fleet`` with ``workers`` workers started; on the way out their logs are printed
    (pytest shows them when a test failed) and everything it started is stopped."""
    fleet = Fleet(workdir, origin, s3_endpoint, store=store, **env)
    try:
        fleet.start_workers(workers)
        yield fleet
    finally:
        print(fleet.logs())
        fleet.close()
