"""Several runner processes (``runner.processes``, archiver/drivers/processes.py) on the real
origin server, a local store and moto's S3: the same records, article manifests and index as
one process; a child killed mid-run loses nothing; the parent stopped stops its children."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from archiver.drivers.job import archive_paths, verify
from archiver.drivers.processes import processes_for
from archiver.fetch.limits import share
from archiver.manifest import Manifest
from archiver.models import Record
from archiver.settings import Settings
from archiver.store import open_store
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.workers import run_cli, start_cli, worker_env, write_article
from tests.test_fetch_http import make_settings


def _articles(origin: OriginServer, folder: Path, n: int, delay: float = 0.0) -> list[str]:
    folder.mkdir(exist_ok=True)
    urls = []
    for i in range(n):
        path = f"/full/{i}_1024.jpg"
        origin.add(path, Response(media.jpeg(16 + i % 7, 12, color=(i, 3, 5)), delay=delay,
                                  content_type=None))
        urls.append(f"http://zkres1.myzaker.com{path}")
    for start in range(0, n, 6):
        write_article(folder, f"a{start}", urls[start:start + 6])
    return [str(folder)]


def _settings(origin: OriginServer, store: dict[str, Any], processes: int | str,
              concurrency: int = 8) -> Settings:
    base = make_settings(origin, retries=0).model_dump()
    return Settings.model_validate({
        **base, "store": store,
        "runner": {"processes": processes, "concurrency": concurrency}})


def _plain(value: Any) -> Any:
    """``value`` without what differs between two runs: times, attempts, segment names,
    the origin's Date headers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.endswith("_at")
                and k not in ("attempts", "segments", "elapsed", "exchange")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _archive(settings: Settings, paths: list[str]) -> tuple[dict[str, Any], list[str], Any]:
    threads: list[str] = []

    def on_record(record: Record) -> None:
        threads.append(threading.current_thread().name)

    result = archive_paths(paths, settings, on_record=on_record)
    with open_store(settings.store) as store:
        manifest = Manifest(store)
        seen = {
            "summary": _plain(result.summary.to_dict()),
            "records": sorted((_plain(r.to_dict()) for r in manifest.iter_records()),
                              key=lambda r: r["origin"]),
            "index": _plain({k: dict(v) for k, v in manifest.summaries().items()}),
            "articles": _plain(list(manifest.iter_articles())),
            "verify": _plain(vars(verify(settings))),
        }
    return seen, threads, result


@pytest.fixture(params=["local", "s3"])
def store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A function giving the store settings of a new, empty store."""
    if request.param == "local":
        yield lambda name: {"url": str(tmp_path / name)}
        return
    endpoint = request.getfixturevalue("aws_env")

    def s3(name: str) -> dict[str, Any]:
        store = {"url": f"s3://{name}-{uuid.uuid4().hex[:12]}/arch", "endpoint_url": endpoint,
                 "region": "us-east-1", "addressing_style": "path"}
        with open_store(Settings.model_validate({"store": store}).store) as opened:
            opened.ensure_bucket()  # type: ignore[attr-defined]
        return store

    yield s3


def test_two_processes_write_what_one_writes(origin: OriginServer, tmp_path: Path,
                                             store_of: Any) -> None:
    paths = _articles(origin, tmp_path / "articles", 30)
    origin.add("/full/missing_1024.jpg", Response(status=404))
    write_article(tmp_path / "articles", "gone", ["http://zkres1.myzaker.com/full/missing_1024.jpg"])
    one, threads_one, _ = _archive(_settings(origin, store_of("one"), 1), paths)
    two, threads_two, result = _archive(_settings(origin, store_of("two"), 2), paths)
    assert one == two
    assert one["summary"]["archived"] == 30 and one["summary"]["errors"] == {"http-404": 1}
    # Every record reported once, on the calling thread, as with one process.
    assert len(threads_two) == len(threads_one) == 31
    assert set(threads_two) == {threading.current_thread().name}
    assert result.plan.counts["todo"] == 31


def _runner_children() -> list[psutil.Process]:
    """This process's runner children (forked: the same command line)."""
    me = psutil.Process()
    return [p for p in me.children() if p.cmdline() == me.cmdline()]


def _kill_a_runner_child() -> psutil.Process:
    child = _runner_children()[0]
    os.kill(child.pid, signal.SIGKILL)
    return child


@pytest.mark.faults
def test_a_child_killed_mid_run_loses_nothing(origin: OriginServer, tmp_path: Path) -> None:
    paths = _articles(origin, tmp_path / "articles", 40, delay=0.2)
    settings = _settings(origin, {"url": str(tmp_path / "archive")}, 2, concurrency=4)
    killed: list[int] = []
    reported: list[str] = []

    def on_record(record: Record) -> None:
        reported.append(record.id)
        if not killed:  # the first record: both children are busy
            killed.append(_kill_a_runner_child().pid)

    result = archive_paths(paths, settings, on_record=on_record)
    assert killed
    assert result.summary.to_dict()["archived"] == 40
    assert sorted(reported) == sorted(set(reported)) and len(reported) == 40
    with open_store(settings.store) as store:
        manifest = Manifest(store)
        assert {r.status for r in manifest.iter_records()} == {"archived"}
        assert len(manifest.summaries()) == 40
        assert verify(settings).ok == 40
    # A re-run finds everything archived (the dead child's writer marker costs a listing).
    rerun = archive_paths(paths, settings)
    assert rerun.plan.counts["todo"] == 0


@pytest.mark.faults
def test_every_child_killed_the_parent_finishes(origin: OriginServer, tmp_path: Path) -> None:
    paths = _articles(origin, tmp_path / "articles", 24, delay=0.2)
    settings = _settings(origin, {"url": str(tmp_path / "archive")}, 2, concurrency=4)
    reported: list[Record] = []

    def on_record(record: Record) -> None:
        reported.append(record)
        if len(reported) in (1, 2):  # one child, then the other (which took the first's)
            psutil.wait_procs([_kill_a_runner_child()])

    result = archive_paths(paths, settings, on_record=on_record)
    assert not _runner_children()
    # Each asset reported once: archived (by a child, or by the parent once none was left),
    # or failed as redelivered when it was out in both dead children.
    assert len({r.id for r in reported}) == len(reported) == 24
    assert {r.status for r in reported} <= {"archived", "failed"}
    assert {str((r.error or {}).get("code")) for r in reported if r.status == "failed"} <= {
        "redelivered"}
    counts = result.summary.to_dict()
    assert counts["archived"] == sum(r.status == "archived" for r in reported) > 0
    with open_store(settings.store) as store:
        stored = {r.id: r.status for r in Manifest(store).iter_records()}
    assert stored == {r.id: r.status for r in reported}


@pytest.mark.faults
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_parent_stopped_stops_its_children(origin: OriginServer, tmp_path: Path,
                                               sig: signal.Signals) -> None:
    articles = tmp_path / "articles"
    _articles(origin, articles, 30, delay=0.3)
    root = tmp_path / "archive"
    env = worker_env("redis://127.0.0.1:1/0", "http://127.0.0.1:1", str(root), origin,
                     ARCHIVER_FETCH__RETRIES="0", ARCHIVER_RUNNER__PROCESSES="2",
                     ARCHIVER_RUNNER__CLAIMS="off")
    args = ["archive", str(articles), "--store", str(root), "-j", "4"]
    proc = start_cli(args, env)
    parent = psutil.Process(proc.pid)
    children: list[psutil.Process] = []
    while len(children) < 2 or sum(origin.hits.values()) < 4:
        assert proc.poll() is None, proc.communicate()
        children = parent.children()
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive
    # Nothing half-written: a re-run archives the rest, each asset once, and verifies.
    done = run_cli(args, env)
    assert done.returncode == 0, done.stderr
    with open_store(Settings.model_validate({"store": {"url": str(root)}}).store) as store:
        records = list(Manifest(store).iter_records())
        assert len(records) == 30 and {r.status for r in records} == {"archived"}
        assert len(list(store.list("media/"))) == 30
        assert not [info.key for info in store.list("manifest/writers/")]


def test_how_many_processes() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert processes_for(Settings(), 10_000) == 1  # the default
    auto = Settings.model_validate({"runner": {"concurrency": 64, "processes": "auto"},
                                    "fetch": {"per_host_concurrency": 64}})
    # "auto": one per 64 new assets, up to the CPUs; one process while other threads run.
    lone = threading.active_count() == 1
    assert processes_for(auto, 63) == 1
    assert processes_for(auto, 64 * cpus) == (cpus if lone else 1)
    # Never more than the smallest per-host cap (the wayback host's 2, when it is on), the
    # concurrency or the assets.
    def settings(wayback: bool = True, **fetch: Any) -> Settings:
        return Settings.model_validate({
            "runner": {"processes": 8, "concurrency": 6}, "wayback": {"enabled": wayback},
            "fetch": {"per_host_concurrency": 5, **fetch}})

    assert processes_for(settings(), 1000) == 2
    assert processes_for(settings(wayback=False), 1000) == 5
    assert processes_for(settings(wayback=False), 3) == 3
    slow = [{"pattern": "*.slow", "max_concurrency": 3}]
    assert processes_for(settings(wayback=False, hosts=slow), 1000) == 3


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 32])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_shares_add_up_to_the_cap(total: int, parts: int) -> None:
    for host in ("a.example", "b.example", "c.example", ""):
        shares = [share(total, part, parts, host) for part in range(parts)]
        assert sum(shares) == total and max(shares) - min(shares) <= 1
