"""Every figure of issue 6 in one run: ``python -m bench --profile quick|full``.

quick (under 5 minutes): 60 articles (~240 assets), scan over 2,000 articles; full: the issue's
10,000 articles (~38,000 assets; hours, mostly in the sequential baselines). Each archive run
is a fresh child process (bench.measure) against one local internet (bench.origin, its own
processes, 50 ms per request) and one moto S3 server (its own process); the baselines get the
same URL list in the same run. Writes bench/RESULTS.md and bench/throughput.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.archive import big_asset, run_archiver, s3_service
from bench.baselines import gallery_dl_sync, naive_sequential, wget_sync
from bench.measure import Measurement, measure_call
from bench.origin import LocalInternet, Options, capacity
from bench.workload import asset_urls, make_articles

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Profile:
    articles: int
    scan_articles: int
    concurrency: tuple[int, ...] = (1, 8, 32, 64)
    latency: float = 0.05
    big_mb: int = 500
    baselines: tuple[str, ...] = ("naive", "wget", "gallery-dl")
    seed: int = 7


PROFILES = {
    "quick": Profile(articles=60, scan_articles=2000),
    "full": Profile(articles=10_000, scan_articles=10_000),
    # the smoke test: a handful of assets, no latency, no big file, no external tools
    "smoke": Profile(articles=3, scan_articles=20, concurrency=(1, 4), latency=0.0, big_mb=0,
                     baselines=("naive",)),
}


@dataclass
class Results:
    profile: str
    command: str
    workload: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, m: Measurement, kind: str, store: str, unit: str = "assets") -> Measurement:
        print("  " + m.line(unit), flush=True)
        self.rows.append({"kind": kind, "store": store, "unit": unit, **m.to_dict()})
        return m


def _service_pids(net: LocalInternet) -> dict[str, list[int]]:
    moto = [p.pid for p in psutil.Process().children()
            if "bench.s3server" in " ".join(_cmdline(p))]
    return {"origin": net.pids, "s3": moto}


def _cmdline(proc: Any) -> list[str]:
    try:
        return list(proc.cmdline())
    except psutil.Error:
        return []


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def watched(net: LocalInternet, fn: Callable[[], Measurement | None]) -> Measurement | None:
    """Run ``fn`` and add the origin's CPU share (of one core) and request count to its row,
    which shows whether the origin was the bottleneck."""
    net.reset()
    pids = _service_pids(net)
    before = {name: _cpu(p) for name, p in pids.items()}
    m = fn()
    if m is None:
        return None
    wall = max(m.wall, 1e-9)
    share = {f"{name}_cpu_pct": round(100 * (_cpu(p) - before[name]) / wall)
             for name, p in pids.items()}
    stats = net.stats()
    return replace(m, extra={**m.extra, **share, "origin_requests": stats["requests"],
                             "origin_max_inflight": stats["max_inflight"]})


def _scan_job(folder: str) -> int:
    from archiver.settings import ScanSettings
    from bench.scan import totals

    return totals([folder], ScanSettings())["articles"]


def _scan_baseline_job(folder: str) -> int:
    from bench.scan import baseline

    paths = sorted(Path(folder).glob("*.md"))
    for path in paths:
        baseline(path.read_text(encoding="utf-8"))
    return len(paths)


def run_scan(res: Results, profile: Profile, work: Path) -> None:
    folder = work / "scan"
    make_articles(profile.scan_articles, profile.seed, folder)
    n, m = measure_call("archiver scan (scan_paths)", _scan_job, str(folder))
    res.add(m.with_counts(n, 0), "scan", "-", "articles")
    n, m = measure_call("baseline scan (bs4 html.parser)", _scan_baseline_job, str(folder))
    res.add(m.with_counts(n, 0), "scan baseline", "-", "articles")
    shutil.rmtree(folder, ignore_errors=True)


def run_archive(res: Results, profile: Profile, net: LocalInternet, endpoint: str,
                work: Path) -> None:
    paths = make_articles(profile.articles, profile.seed, work / "articles")
    urls = asset_urls(paths)
    res.workload.update(articles=len(paths), assets=len(urls), latency_ms=profile.latency * 1000)
    print(f"workload: {len(paths)} articles, {len(urls)} assets", flush=True)
    for n in profile.concurrency:
        dest = str(work / f"local-{n}")

        def local(n: int = n, dest: str = dest) -> Measurement:
            return run_archiver(f"archiver -j{n} -> folder", paths, dest, net, n)

        _add(res, watched(net, local), "archiver", "folder")
        shutil.rmtree(dest, ignore_errors=True)
    for n in profile.concurrency:

        def remote(n: int = n) -> Measurement:
            return run_archiver(f"archiver -j{n} -> s3", paths, f"s3://bench/run-{n}", net, n,
                                endpoint)

        _add(res, watched(net, remote), "archiver", "s3")
    top = max(profile.concurrency)
    _add(res, watched(net, lambda: run_archiver(
        f"archiver re-run (all archived) -j{top} -> s3", paths, f"s3://bench/run-{top}", net,
        top, endpoint)), "incremental", "s3")
    if "naive" in profile.baselines:
        _add(res, watched(net, lambda: naive_sequential(
            urls, net.proxy_url, str(work / "naive"), label="naive sequential -> folder")),
            "baseline", "folder")
        shutil.rmtree(work / "naive", ignore_errors=True)
        _add(res, watched(net, lambda: naive_sequential(
            urls, net.proxy_url, "s3://bench/naive", endpoint, label="naive sequential -> s3")),
            "baseline", "s3")
    if "wget" in profile.baselines:
        _add(res, watched(net, lambda: wget_sync(urls, net.proxy_url, "s3://bench/wget",
                                                  endpoint)), "baseline", "s3")
    if "gallery-dl" in profile.baselines:
        gdl = watched(net, lambda: gallery_dl_sync(urls, net.proxy_url, "s3://bench/gdl",
                                                    endpoint))
        if gdl is None:
            res.notes.append("gallery-dl is not installed: no gallery-dl row.")
        else:
            _add(res, gdl, "baseline", "s3")
    if profile.big_mb:
        _add(res, watched(net, lambda: big_asset(net, profile.big_mb, "s3://bench/big",
                                                  endpoint)), "big asset", "s3")
        big_dir = str(work / "big")
        m = watched(net, lambda: big_asset(net, profile.big_mb, big_dir))
        if m is not None:
            _add(res, replace(m, label=m.label + " (folder)"), "big asset", "folder")
        shutil.rmtree(big_dir, ignore_errors=True)


def _add(res: Results, m: Measurement | None, kind: str, store: str) -> None:
    if m is not None:
        res.add(m, kind, store)


def run_celery(res: Results, profile: Profile, net: LocalInternet, work: Path) -> None:
    """Enqueue rate and 1 and 2 Celery workers, with bench/celery.py's functions (the Celery
    engineer's), on this run's workload and origin, into local folders."""
    try:
        from bench import celery as bench_celery
        from tests.support.services import redis_server
    except ImportError as exc:
        res.notes.append(f"no Celery or enqueue rows: {exc}")
        return
    n_enqueue = 5_000 if profile.articles < 1000 else 50_000
    threads = 8
    with redis_server() as url:  # its own broker: no worker below may drain these
        rate = bench_celery.enqueue_rate(url, n_enqueue)
    res.add(Measurement("enqueue (archiver.drivers.enqueue.send, redis)", rate["seconds"], 0.0, 0,
                        items=int(rate["assets"]), extra={"note": "in the harness process"}),
            "enqueue", "redis")
    with redis_server() as url:
        for n in (1, 2):
            store = str(work / f"celery-{n}")
            env = bench_celery._worker_env(url, store, net, threads)
            row = watched(net, lambda env=env, n=n: _celery_row(  # type: ignore[misc]
                bench_celery, work / "articles", env, n, threads))
            _add(res, row, "celery", "folder")
            shutil.rmtree(store, ignore_errors=True)


def _celery_row(bench_celery: Any, articles: Path, env: dict[str, str], n: int,
                threads: int) -> Measurement:
    got = bench_celery.celery_workers(articles, env, n, threads)
    return Measurement(f"celery, {n} worker(s) x {threads} threads -> folder", got["seconds"],
                       0.0, 0, items=int(got["assets"]), extra={
                           "failed": got["failed"], "concurrency": n * threads,
                           "note": "from first send to last record; worker CPU/RSS not "
                                   "measured"})


def run_profile(name: str, out_dir: Path = HERE, articles: int | None = None,
                argv: Sequence[str] = ()) -> Results:
    profile = PROFILES[name]
    if articles:
        profile = replace(profile, articles=articles)
    res = Results(name, "python -m bench " + " ".join(argv or ["--profile", name]))
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    started = time.monotonic()
    try:
        with LocalInternet(Options(latency=0.0)) as net:
            res.workload["origin_capacity"] = {
                "small": capacity(net.port, seconds=1.0 if name == "smoke" else 2.0),
                "large": capacity(net.port, "/capacity/large-2000000b.jpg", 16,
                                  0.5 if name == "smoke" else 2.0)}
        print(f"origin ceiling: {res.workload['origin_capacity']}", flush=True)
        print("scan:", flush=True)
        run_scan(res, profile, work)
        with LocalInternet(Options(latency=profile.latency)) as net, s3_service() as endpoint:
            print("archive:", flush=True)
            run_archive(res, profile, net, endpoint, work)
            if name != "smoke":
                print("celery:", flush=True)
                run_celery(res, profile, net, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.workload["elapsed_s"] = round(time.monotonic() - started, 1)
    from bench.report import write_report

    written = write_report(res, out_dir)
    print("wrote " + ", ".join(str(p) for p in written))
    return res


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--articles", type=int, default=None, help="override the profile's")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md goes")
    args = parser.parse_args(argv)
    run_profile(args.profile, args.out, args.articles,
                list(argv) if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
