"""The in-process runner against the naive sequential baseline, and peak RSS on a 500 MB asset.

    python -m bench.archive [--articles 60] [--latency 0.05] [--concurrency 32] [--big-mb 500]
                            [--s3]

Both sides fetch the same assets from the same local internet (bench.origin, its own
processes) with the same added latency; archiver runs the job exactly as ``archiver archive``
does (scan, plan against the manifest, run, article manifests, index) in a fresh child process.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.baselines import naive_sequential
from bench.measure import MB, Measurement, compiled, measure_call, measure_cmd
from bench.origin import LocalInternet, Options
from bench.workload import asset_urls, make_articles
from tests.support.services import free_port, stop, wait_port

ROOT = Path(__file__).resolve().parents[1]
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}


def _settings(store_url: str, connect_to: Sequence[str], endpoint_url: str | None,
              concurrency: int | None) -> Any:
    """The settings of a run: the local internet reachable, the store, and ``concurrency``
    threads with as many connections per host (the origin is local); None keeps the default
    concurrency and per-host cap, as a user who sets nothing gets them."""
    from archiver.settings import Settings

    fetch: dict[str, Any] = {"connect_to": list(connect_to), "allow_private": ["127.0.0.0/8"]}
    runner: dict[str, Any] = {}
    if concurrency is not None:
        fetch["per_host_concurrency"] = max(4, concurrency)
        runner["concurrency"] = concurrency
    return Settings().with_overrides(
        fetch=fetch, store={"url": store_url, "endpoint_url": endpoint_url}, runner=runner)


def archive_job(paths: Sequence[str], store_url: str, connect_to: Sequence[str],
                concurrency: int | None, endpoint_url: str | None = None,
                processes: int | None = None, cache_dir: str | None = None
                ) -> dict[str, Any]:
    """What ``archiver archive PATHS --store URL -j N`` does (the same function), with the
    time of each phase and ``job_cpu``: the CPU seconds (user + system, every thread and every
    runner process) of the job itself, after the interpreter and archiver's modules are
    loaded. Runs in the measured child process."""
    import archiver.fetch.http  # loaded before the clock starts, as said above
    import archiver.fetch.video
    from archiver.drivers.job import archive_paths

    if store_url.startswith("s3://"):
        import archiver.store.s3  # noqa: F401
    settings = _settings(store_url, connect_to, endpoint_url, concurrency)
    if cache_dir is not None:  # a scan cache of the run's own (bench.compare: a new one)
        settings = settings.with_overrides(scan={"cache_dir": cache_dir})
    if processes is not None:  # else "auto", as a user who sets nothing gets
        settings = settings.with_overrides(runner={"processes": processes})
    cpu = time.process_time() + _children_cpu()
    result = archive_paths(paths, settings)
    cpu = time.process_time() + _children_cpu() - cpu
    return {**result.summary.to_dict(),
            **{f"plan_{k}": v for k, v in result.plan.counts.items()},
            "phases": result.phases, "job_cpu": round(cpu, 3)}


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children: the runner processes
    (``runner.processes``) count in the job's CPU."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def big_asset_job(url: str, store_url: str, connect_to: Sequence[str],
                  endpoint_url: str | None = None) -> dict[str, Any]:
    """Archive one large direct video (built as an Asset, no article needed)."""
    from archiver.drivers.runner import run
    from archiver.models import Asset
    from archiver.pipeline import build_context
    from archiver.store import open_store

    settings = _settings(store_url, connect_to, endpoint_url, 1)
    with open_store(settings.store) as store, build_context(settings, store) as ctx:
        return run([Asset(origin=url, kind="video", urls=(url,))], ctx, concurrency=1).to_dict()


def run_archiver(label: str, paths: Sequence[str | Path], store_url: str, net: LocalInternet,
                 concurrency: int | None, endpoint_url: str | None = None,
                 processes: int | None = None, cache_dir: str | Path | None = None
                 ) -> Measurement:
    """``archive_job`` in a fresh process; items = assets archived (checked, on a re-run)."""
    result, m = measure_call(label, archive_job, [str(p) for p in paths], store_url,
                             net.connect_to, concurrency, endpoint_url, processes,
                             None if cache_dir is None else str(cache_dir))
    # A re-run over an archived set archives nothing: its items are the assets it checked.
    items = result["archived"] if result["plan_todo"] else result["plan_assets"]
    return m.with_counts(items, result["bytes"], concurrency=concurrency, failed=result["failed"],
                         assets=result["plan_assets"], todo=result["plan_todo"],
                         phases=result["phases"], errors=result["errors"],
                         job_cpu=result["job_cpu"])


# The CLI's closing line (archiver/cli/archive.py, _print_summary).
_SUMMARY = re.compile(r"archived (\d+)(?: \(\d+ recovered[^)]*\))?, failed (\d+), skipped \d+, "
                      r"already archived (\d+);")


def run_archiver_cli(label: str, paths: Sequence[str | Path], store_url: str,
                     net: LocalInternet | None, concurrency: int | None,
                     endpoint_url: str | None = None, cache_dir: str | Path | None = None
                     ) -> Measurement:
    """``archiver archive PATHS --store URL [-j N]`` as a user types it, measured from outside
    like the shell loops it is compared with: the interpreter's start-up, the imports and the
    whole job are in its wall and CPU (``run_archiver`` runs the job in a prepared child and
    times the job alone). Items as ``run_archiver`` counts them, from the CLI's summary line.
    ``net`` None: no local internet (bench.rerun: everything is archived, nothing is fetched)."""
    compiled()  # as an installed archiver has its byte-code (measure_call does the same)
    argv = [sys.executable, "-m", "archiver", "archive", "--store", store_url, "--no-progress",
            "--allow-private", "127.0.0.0/8"]
    for rule in net.connect_to if net is not None else ():
        argv += ["--connect-to", rule]
    env = dict(os.environ)
    if concurrency is not None:
        argv += ["-j", str(concurrency)]
        env["ARCHIVER_FETCH__PER_HOST_CONCURRENCY"] = str(max(4, concurrency))
    if endpoint_url is not None:
        env["ARCHIVER_S3_ENDPOINT_URL"] = endpoint_url
    if cache_dir is not None:  # the scan cache's folder (default: the user's, ~/.cache)
        env["ARCHIVER_SCAN__CACHE_DIR"] = str(cache_dir)
    m = measure_cmd(label, [*argv, *map(str, paths)], env=env, cwd=str(ROOT), check=False)
    found = _SUMMARY.search(m.extra["output"])
    if found is None or m.extra["exit"] not in (0, 1):
        raise RuntimeError(f"{label}: no summary (exit {m.extra['exit']}):\n"
                           f"{m.extra['output']}")
    archived, failed, unchanged = map(int, found.groups())
    # A re-run over an archived set archives nothing: its items are the assets it checked.
    return m.with_counts(archived or unchanged, 0, concurrency=concurrency, failed=failed,
                         todo=archived + failed)


@contextmanager
def s3_service(bucket: str = "bench") -> Iterator[str]:
    """moto's S3 server (bench.s3server: it counts the requests it serves) in its own process
    on a free port, with ``bucket``; yields the endpoint. Sets dummy AWS credentials in
    os.environ (children inherit them)."""
    import boto3

    os.environ.update(DUMMY_AWS)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.s3server", "-p", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, timeout=30)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        stop(proc)


def big_asset(net: LocalInternet, size_mb: int, store_url: str,
              endpoint_url: str | None = None) -> Measurement:
    """Peak RSS of the in-process runner archiving one ``size_mb`` MB video."""
    url = f"http://video.bench.example/big/video-{size_mb * MB}b.mp4"
    result, m = measure_call(f"archiver, one {size_mb} MB video", big_asset_job, url, store_url,
                             net.connect_to, endpoint_url)
    return m.with_counts(result["archived"], result["bytes"], failed=result["failed"],
                         errors=result["errors"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--big-mb", type=int, default=500)
    parser.add_argument("--s3", action="store_true", help="store in moto's S3, not a folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    try:
        with LocalInternet(Options(latency=args.latency)) as net, \
                (s3_service() if args.s3 else _no_s3()) as endpoint:
            paths = make_articles(args.articles, args.seed, work / "articles")
            urls = asset_urls(paths)
            print(f"workload: {len(paths)} articles, {len(urls)} assets, latency "
                  f"{args.latency * 1000:.0f} ms, store {'s3 (moto)' if endpoint else 'folder'}")

            def dest(name: str) -> str:
                return f"s3://bench/{name}" if endpoint else str(work / name)

            ours = run_archiver(f"archiver in-process -j{args.concurrency}", paths,
                                dest("archiver"), net, args.concurrency, endpoint)
            print(ours.line())
            base = naive_sequential(urls, net.proxy_url, dest("naive"), endpoint)
            print(base.line())
            print(f"ratio: {ours.rate / base.rate:.1f}x assets/s, peak RSS "
                  f"{ours.peak_rss / MB:.0f} MB vs {base.peak_rss / MB:.0f} MB")
            net.reset()
            big = big_asset(net, args.big_mb, dest("big"), endpoint)
            print(big.line() + f" (target < 150 MB: "
                  f"{'met' if big.peak_rss < 150 * MB else 'NOT met'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _no_s3() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
