"""The incremental re-run at scale: N articles whose every asset is already archived in S3
(moto's server in its own process), then ``archiver archive`` over them again.

Targets (issue 11): 10,000 unchanged archived articles in at most 2 s, 100,000 in at most
15 s, i.e. planning must not issue one request per asset. The archived state is written
straight through the manifest as a finished first run into S3 leaves it (records in segments,
then the index); no origin runs, so any fetch would fail and show in the summary. A first
re-run then writes the article manifests and fills the run's own scan cache (``DIR/scan-cache``,
not ~/.cache), as the archiving run leaves them.

The headline figure is the steady state as a user sees it: ``archiver archive FOLDER --store
s3://rerun/archive`` run as a command and timed from outside (interpreter start-up, imports and
the job; byte-code compiled first, as an installed archiver has it), with that warm scan cache.
Beside it, in the same rounds (CLI, job, CLI, job, ...), the job alone in a prepared child
(``archive_paths`` after start-up and imports), with its phases.

Usage: python -m bench.rerun [--articles 10000] [--seed 11] [--rounds 3] [--out bench/RERUN.md]

Building the archive takes most of a run at 100,000 articles (seeding, then the first re-run
writing 100,000 article manifests: 15-40 minutes on a loaded 2-core machine). To build once
and measure several times: ``--work DIR`` keeps the articles and the scan cache in DIR (made on
the first run, reused after), ``--endpoint URL`` uses an S3 server already running (``python -m
bench.s3server -p PORT``) whose bucket ``rerun`` is seeded only when it holds no index yet.
``--build`` builds and times nothing (run it under ``nice``); ``--steady`` times the
steady-state re-runs only, not the parts of planning.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

from archiver.drivers.job import archive_paths
from archiver.manifest import INDEX_KEY, Manifest
from archiver.models import Asset, Record
from archiver.plan import collect_assets
from archiver.plan.scancache import scan_cached
from archiver.scan import scan_paths
from archiver.settings import Settings
from archiver.store import open_store
from bench.archive import DUMMY_AWS, ROOT, run_archiver_cli, s3_service
from bench.measure import MB, Measurement, measure_call
from bench.report import load_text, machine, put_section, versions
from bench.workload import make_articles

STORE = "s3://rerun/archive"


def seed_archive(paths: list[Path], settings: Settings) -> int:
    """Write an archived record for every asset of ``paths`` and build the index."""
    assets = collect_assets(scan_paths([str(p) for p in paths], settings.scan))
    with open_store(settings.store) as store:
        return _seed(Manifest(store), assets)


def seeded(settings: Settings) -> bool:
    """Whether the store already holds an index (an archive kept from an earlier run)."""
    with open_store(settings.store) as store:
        return store.exists(INDEX_KEY)


def _seed(manifest: Manifest, assets: list[Asset]) -> int:

    def save(asset_index: int) -> None:
        asset = assets[asset_index]
        sha = hashlib.sha256(asset.origin.encode()).hexdigest()
        manifest.save(Record(origin=asset.origin, kind=asset.kind, status="archived",
                             key=f"media/{sha[:2]}/{sha}.jpg", sha256=sha, size=1000,
                             content_type="image/jpeg", route="direct", urls=asset.urls,
                             citations=asset.citations), fresh=True)

    with manifest.batched(), ThreadPoolExecutor(4) as pool:
        list(pool.map(save, range(len(assets))))
    manifest.build_index()
    return len(assets)


def rerun(folder: str, settings: Settings) -> dict[str, object]:
    result = archive_paths([folder], settings)
    return {**result.summary.to_dict(), **result.plan.counts, "phases": result.phases}


def scan_only(folder: str, settings: Settings) -> int:
    return sum(1 for _ in scan_paths([folder], settings.scan))


def scan_cached_only(folder: str, settings: Settings) -> int:
    return sum(1 for _ in scan_cached([folder], settings.scan))


def list_only(settings: Settings) -> int:
    with open_store(settings.store) as store:
        return len(Manifest(store).statuses())


@contextmanager
def s3_endpoint(url: str | None) -> Iterator[str]:
    """``url`` (an S3 server already running, its bucket made if missing), else a fresh
    moto server of this run's own."""
    if url is None:
        with s3_service("rerun") as endpoint:
            yield endpoint
        return
    import boto3

    os.environ.update(DUMMY_AWS)
    client = boto3.client("s3", endpoint_url=url)
    with suppress(client.exceptions.BucketAlreadyOwnedByYou,
                  client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket="rerun")
    yield url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "RERUN.md")
    parser.add_argument("--work", type=Path, help="keep (and reuse) articles and scan cache here")
    parser.add_argument("--endpoint", help="an S3 server already running (reused archive)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="steady-state re-runs: the CLI, then the job alone, this many times")
    parser.add_argument("--steady", action="store_true",
                        help="the steady-state re-runs only (not the parts of planning)")
    parser.add_argument("--build", action="store_true",
                        help="build the archive (and its article manifests) only; nothing timed")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    reused = " (archive built by an earlier run, reused: --work DIR --endpoint URL)" \
        if args.work and args.endpoint else ""
    lines = [f"## {args.articles:,} articles\n\n- command: `python -m bench.rerun --articles "
             f"{args.articles} --seed {args.seed}"
             f"{' --steady' if args.steady else ''} --rounds {args.rounds}`{reused}\n"
             f"- machine: {machine()}; {about()}\n- store: moto's S3 server in its "
             "own process, 2 cores shared by everything; load average (1, 5, 15 min) before: "
             + load_text() + "\n"]

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(f"- {text.strip()}\n")

    try:
        articles = work / "articles"
        if articles.is_dir():
            paths = sorted(articles.rglob("*.md"))
        else:
            paths = make_articles(args.articles, args.seed, articles)
        cache = work / "scan-cache"  # the run's own, warmed by the first re-run and kept
        with s3_endpoint(args.endpoint) as endpoint:
            settings = Settings().with_overrides(
                store={"url": STORE, "endpoint_url": endpoint}, scan={"cache_dir": str(cache)})
            if not seeded(settings):
                started = time.perf_counter()
                n_assets = seed_archive(paths, settings)
                say(f"seeded {n_assets} archived assets for {len(paths)} articles in "
                    f"{time.perf_counter() - started:.1f}s")
                # The first run over the seeded state writes the article manifests and fills
                # the scan cache, as the archiving run leaves them; every run after it is the
                # steady state an operator sees.
                result, m = measure_call("re-run (writes article manifests, fills the scan "
                                         "cache)", rerun, str(articles), settings)
                say(m.line())
                say(f"  phases {result['phases']}, assets {result['assets']}, todo "
                    f"{result['todo']}, fetched {result['total']}")
            if args.build:
                return
            steady_runs(str(articles), endpoint, cache, settings, args.rounds, say)
            if not args.steady:
                measure_parts(str(articles), settings, say)
            say("load average after: " + load_text())
        put_section(args.out, f"rerun-{args.articles}", "".join(lines).splitlines())
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def about() -> str:
    """Python, archiver's commit and moto's version, for the block."""
    v = versions()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    return f"python {v['python']}, archiver {v['archiver']} at {commit}, moto {v['moto']}"


def steady_runs(folder: str, endpoint: str, cache: Path, settings: Settings, rounds: int,
                say: Callable[[str], None]) -> None:
    """The steady-state re-run, ``rounds`` pairs: ``archiver archive FOLDER`` as a user types
    it (timed from outside: the interpreter's start-up, imports and the job), then the job
    alone in a prepared child (``archive_paths``, after start-up and imports). Both use the
    scan cache the first re-run left (the run's own folder, not ~/.cache)."""
    clis: list[Measurement] = []
    jobs: list[Measurement] = []
    for n in range(1, rounds + 1):
        m = run_archiver_cli(f"re-run {n}, CLI", [folder], STORE, None, None, endpoint, cache)
        assert m.extra["todo"] == 0 and m.extra["failed"] == 0, m.extra
        clis.append(m)
        say(f"  {m.line()} (load {load_text()[:4]})")
        result, m = measure_call(f"re-run {n}, the job alone", rerun, folder, settings)
        assert isinstance(result, dict) and result["todo"] == 0, result
        jobs.append(m.with_counts(result["assets"], 0, phases=result["phases"]))
        say(f"  {jobs[-1].line()}, phases {result['phases']} (load {load_text()[:4]})")
    cli, job = median_of(clis), median_of(jobs)
    say(f"re-run (steady state), CLI: {cli.items} assets in {cli.wall:.2f} s, CPU "
        f"{cli.cpu:.2f} s, peak RSS {cli.peak_rss / MB:.0f} MB (median of {rounds}; "
        "`archiver archive FOLDER --store s3://rerun/archive`, from outside, byte-code "
        "compiled, the scan cache warm from the first re-run)")
    say(f"re-run (steady state), the job alone in-process (no start-up, no imports): "
        f"{job.wall:.2f} s, CPU {job.cpu:.2f} s, peak RSS {job.peak_rss / MB:.0f} MB "
        f"(median of {rounds})")


def median_of(runs: list[Measurement]) -> Measurement:
    """The run of median wall time."""
    return sorted(runs, key=lambda m: m.wall)[len(runs) // 2]


def measure_parts(folder: str, settings: Settings, say: Callable[[str], None]) -> None:
    """The steady state without the scan cache, and the two halves of planning alone."""
    # The steady state as it was before the scan cache (issue 11, item 4), same run.
    uncached = settings.with_overrides(scan={"cache": False})
    result, m = measure_call("re-run (steady state) without the scan cache", rerun, folder,
                             uncached)
    say(m.line())
    say(f"  phases {result['phases']}")
    _, m = measure_call("  scan through the warm scan cache alone", scan_cached_only, folder,
                        settings)
    say(m.line())
    _, m = measure_call("  scan alone (no cache)", scan_only, folder, settings)
    say(m.line())
    _, m = measure_call("  manifest planning alone (index GET + change markers)", list_only,
                        settings)
    say(m.line())


if __name__ == "__main__":
    main()
