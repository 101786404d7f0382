"""Exporting an archive of N assets (default 10,000) from a local store as WARC and as WACZ:
wall time, MB/s of payload and peak RSS, each export in a fresh child process.

Targets (issue 13): peak RSS under 150 MB and at least 50 MB/s. The baseline is what a user
would do without an export: ``tar`` of the media directory (no format, no index, no digests),
which is about the disk's own speed.

The archive is written straight through the store and the manifest, as a finished run leaves
it: generated media (bench.origin's bodies: JPEG, PNG, WebP and GIF prefixes with unique
filler, log-normal sizes around 60 KB, GIFs around 300 KB), one record per asset with an HTTP
exchange, every 20th asset the same bytes as the one before (a revisit), and an article
manifest per four assets (the WACZ's pages).

Each export runs ``--runs`` times (alternating WARC and WACZ); the figures quoted are the
medians, with the load average before and after, since the machine is shared.

The figures go to the ``export`` block of bench/RESULTS.md (``--out``); the ``export-profile``
block beside it, where the time goes, is written by hand from a profile.

Usage: python -m bench.export [--assets 10000] [--runs 3] [--keep DIR] [--out RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from archiver.manifest import Manifest
from archiver.models import ArticleScan, Citation, Record, Reference
from archiver.store.keys import media_key
from archiver.store.local import LocalStore
from bench.measure import MB, Measurement, measure_call, measure_cmd
from bench.origin import _prefixes, body_for, iter_body
from bench.report import load_text, machine, put_section

HERE = Path(__file__).resolve().parent
EXTS = ("jpg", "jpg", "jpg", "png", "webp", "gif")
PER_ARTICLE = 4


def _url(i: int) -> str:
    return f"http://img{i % 40}.bench.example/p/{i:06d}.{EXTS[i % len(EXTS)]}"


def seed(root: Path, assets: int) -> int:
    """Write ``assets`` archived assets and their article manifests; return payload bytes."""
    import hashlib

    store = LocalStore(root, fsync=False)
    manifest = Manifest(store)
    prefixes = _prefixes()

    def one(i: int) -> int:
        url = _url(i)
        source = _url(i - 1) if i % 20 == 19 else url  # every 20th: the bytes of the one before
        parts = source.split("/", 3)
        body = body_for(parts[2], "/" + parts[3])
        assert body is not None
        data = b"".join(iter_body(body, prefixes))
        sha = hashlib.sha256(data).hexdigest()
        key = media_key(sha, body.ext)
        store.put_bytes(key, data, body.media_type)
        path = "/" + url.split("/", 3)[3]
        exchange = {
            "request": {"method": "GET", "target": path, "version": "HTTP/1.1",
                        "truncated": False, "headers": [
                            ["Host", url.split("/")[2]], ["Accept", "*/*"],
                            ["Accept-Encoding", "gzip, deflate"], ["Connection", "keep-alive"],
                            ["User-Agent", "Mozilla/5.0 (bench)"]]},
            "response": {"version": "HTTP/1.1", "status": 200, "reason": "OK",
                         "truncated": False, "headers": [
                             ["Content-Type", body.media_type],
                             ["Content-Length", str(len(data))],
                             ["Cache-Control", "max-age=31536000"], ["ETag", f'"{sha[:16]}"']]},
        }
        at = f"2024-05-01T12:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 1000:03d}+00:00"
        manifest.save(Record(
            origin=url, kind="gif" if body.ext == "gif" else "image", status="archived",
            key=key, sha256=sha, size=len(data), content_type=body.media_type, route="direct",
            fetched_url=url, http_status=200, exchange=exchange, urls=(url,),
            citations=(Citation(f"posts/{i // PER_ARTICLE:05d}", ("img",)),),
            created_at=at, updated_at=at), fresh=True)
        return len(data)

    with ThreadPoolExecutor(max_workers=4) as pool:
        total = sum(pool.map(one, range(assets)))
    scans = [ArticleScan(article=f"posts/{a:05d}", path=f"posts/{a:05d}.md",
                         title=f"Article {a}", date="Wed, 01 May 2024 08:00:00 GMT",
                         references=tuple(Reference(f"posts/{a:05d}", ("img",), "image",
                                                    _url(i), _url(i))
                                          for i in range(a * PER_ARTICLE,
                                                         min(assets, (a + 1) * PER_ARTICLE))))
             for a in range((assets + PER_ARTICLE - 1) // PER_ARTICLE)]
    manifest.write_articles(scans)
    manifest.build_index()
    return total


def run_export(kind: str, root: str, out: str) -> dict[str, Any]:
    """The export as ``archiver export KIND OUT --store ROOT`` runs it (in the child)."""
    from archiver.export.job import export_warc
    from archiver.export.wacz import export_wacz

    manifest = Manifest(LocalStore(root))
    if kind == "warc":
        return export_warc(manifest, out).to_dict()
    return export_wacz(manifest, out).to_dict()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each export")
    parser.add_argument("--keep", default=None, help="work directory to keep (default: temp)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md",
                        help="the report whose export block is rewritten")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="archiver-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        root = work / "archive"
        if not (root / "manifest").exists():
            print(f"seeding {args.assets} assets into {root} ...", flush=True)
            seed(root, args.assets)
        # MB/s counts the bytes stored (and written once each), as for tar; revisits add none
        total = sum(p.stat().st_size for p in (root / "media").rglob("*") if p.is_file())
        print(f"archive: {args.assets} assets, {total / MB:.0f} MB of media")
        runs: dict[str, list[Measurement]] = {"warc": [], "wacz": []}
        load_before = os.getloadavg()
        for n in range(args.runs):
            for kind, name in (("warc", "export.warc.gz"), ("wacz", "export.wacz")):
                stats, m = measure_call(f"archiver export {kind}", run_export, kind,
                                        str(root), str(work / name))
                m = m.with_counts(stats["assets"], total, **stats)
                runs[kind].append(m)
                out_mb = (work / name).stat().st_size / MB
                print(f"run {n + 1}: {m.line()}; {stats['records']} records "
                      f"{stats['types']}, {stats['problems']} problems, output {out_mb:.0f} MB",
                      flush=True)
                (work / name).unlink()
        tar = measure_cmd("baseline: tar of media/", ["tar", "-cf", str(work / "media.tar"),
                                                      "-C", str(root), "media"])
        tar = tar.with_counts(args.assets, total)
        (work / "media.tar").unlink()
        print(tar.line(), flush=True)
        load_after = os.getloadavg()
        lines = report(runs, tar, total, args, load_before, load_after)
        print("\n".join(lines))
        put_section(args.out, "export", lines)
        print(f"wrote {args.out}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def report(runs: dict[str, list[Measurement]], tar: Measurement, total: int,
           args: argparse.Namespace, before: tuple[float, ...],
           after: tuple[float, ...]) -> list[str]:
    """The export block of RESULTS.md: medians of the runs, against tar, and the targets."""
    lines = [
        "## Export: WARC and WACZ from a local store (issue 13)", "",
        f"- command: `python -m bench.export --assets {args.assets} --runs {args.runs}` "
        f"(each export in a fresh process, WARC and WACZ alternating)",
        f"- machine: {machine()}; load average (1, 5, 15 min) before {load_text(before)}, after "
        f"{load_text(after)} (the 2 cores are shared: above 2 means a busy machine)",
        f"- archive: {args.assets} assets, {total / MB:.0f} MB stored (bench.origin's media, "
        "one revisit in 20), one article per 4 assets; MB/s counts the stored bytes, as for "
        "tar; CPU is user + system of the export's process; the export ends with an fsync, "
        "tar does not", "",
        "| run | MB/s (median) | runs MB/s | wall s (median) | CPU s (median) | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    ok = {}
    for kind, ms in runs.items():
        mb_s = statistics.median(m.mb_s for m in ms)
        rss = max(m.peak_rss for m in ms) / MB
        ok[kind] = (mb_s, rss)
        lines.append(f"| archiver export {kind} | {mb_s:.0f} | "
                     f"{', '.join(f'{m.mb_s:.0f}' for m in ms)} | "
                     f"{statistics.median(m.wall for m in ms):.2f} | "
                     f"{statistics.median(m.cpu for m in ms):.1f} | {rss:.0f} |")
    lines += [f"| baseline: tar of media/ | {tar.mb_s:.0f} | - | {tar.wall:.2f} | "
              f"{tar.cpu:.1f} | {tar.peak_rss / MB:.0f} |", "",
              "| target (issue 13) | measured | met |", "|---|---|---|"]
    for kind, (mb_s, rss) in ok.items():
        lines.append(f"| {kind}: >= 50 MB/s, peak RSS < 150 MB | {mb_s:.0f} MB/s, {rss:.0f} MB "
                     f"| {'yes' if mb_s >= 50 and rss < 150 else 'no'} |")
    return lines


if __name__ == "__main__":
    main()
