"""The incremental re-run at scale: N articles whose every asset is already archived in S3
(moto's server in its own process), then ``archiver archive`` over them again.

Targets (issue 11): 10,000 unchanged archived articles in at most 2 s, 100,000 in at most
15 s, i.e. planning must not issue one request per asset. The archived state is written
straight through the manifest as a finished first run into S3 leaves it (records in segments,
then the index); no origin runs, so any fetch would fail and show in the summary.

Usage: python -m bench.rerun [--articles 10000] [--seed 11] [--out bench/RERUN.md]

Building the archive takes most of a run at 100,000 articles (seeding, then the first re-run
writing 100,000 article manifests: 30-40 minutes on a loaded 2-core machine). To profile
several times against one archive: ``--work DIR`` keeps the articles and the scan cache in DIR
(made on the first run, reused after), ``--endpoint URL`` uses an S3 server already running
(``python -m bench.s3server -p PORT``) whose bucket ``rerun`` is seeded only when it holds no
index yet. ``--steady`` measures the steady-state re-run only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
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
from bench.archive import DUMMY_AWS, s3_service
from bench.measure import measure_call
from bench.report import load_text, put_section
from bench.workload import make_articles


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "RERUN.md")
    parser.add_argument("--work", type=Path, help="keep (and reuse) articles and scan cache here")
    parser.add_argument("--endpoint", help="an S3 server already running (reused archive)")
    parser.add_argument("--steady", action="store_true", help="the steady-state re-run only")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    reused = " (archive built by an earlier run, reused: --work DIR --endpoint URL)" \
        if args.work and args.endpoint else ""
    lines = [f"## {args.articles:,} articles\n\n- command: `python -m bench.rerun --articles "
             f"{args.articles} --seed {args.seed}`{reused}\n- store: moto's S3 server in its "
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
        with s3_endpoint(args.endpoint) as endpoint:
            settings = Settings().with_overrides(
                store={"url": "s3://rerun/archive", "endpoint_url": endpoint},
                scan={"cache_dir": str(work / "scan-cache")})  # this run's, cold at first
            built = seeded(settings)
            if not built:
                started = time.perf_counter()
                n_assets = seed_archive(paths, settings)
                say(f"seeded {n_assets} archived assets for {len(paths)} articles in "
                    f"{time.perf_counter() - started:.1f}s")
            # The first run over the seeded state also writes the article manifests; the
            # second one is the steady state an operator sees every time.
            labels = ["re-run (writes article manifests)", "re-run (steady state)"]
            if built:  # an archive kept from an earlier run: its manifests are written
                labels[0] = "re-run (archive reused: a steady state too)"
            for label in labels[1:] if args.steady else labels:
                result, m = measure_call(label, rerun, str(articles), settings)
                say(m.line())
                say(f"  phases {result['phases']}, assets {result['assets']}, todo "
                    f"{result['todo']}, fetched {result['total']}")
                assert isinstance(result, dict) and result["todo"] == 0, result
            if not args.steady:
                measure_parts(str(articles), settings, say)
            say("load average after: " + load_text())
        if not args.steady:
            put_section(args.out, f"rerun-{args.articles}", "".join(lines).splitlines())
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


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
