"""How long planning takes: ``Manifest.statuses()`` over N records, on a local directory and on
moto's S3 server, cold (no index: every record read), warm (index fresh: one GET + one LIST)
and after 1% of the records changed; against the naive baseline of one GET per record.

Usage: python bench/manifest.py [--records 50000] [--s3-records 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver.manifest import Manifest, dumps
from archiver.models import Citation, Record
from archiver.store.base import Store
from archiver.store.local import LocalStore
from tests.support.services import moto_s3
from tests.support.stores import new_s3_store


def record(n: int, status: str = "archived") -> Record:
    origin = f"http://zkres1.myzaker.com/data/attachment/editor/2019/{n:08d}.jpg"
    return Record(origin=origin, kind="image", status=status, key=f"media/ab/{n:064x}.jpg",
                  sha256=f"{n:064x}", size=50_000 + n, content_type="image/jpeg",
                  route="direct", urls=(origin,), created_at="2026-01-01T00:00:00+00:00",
                  updated_at="2026-01-01T00:00:00+00:00",
                  citations=(Citation(f"posts/{n // 5}.md", ("img[src]",)),))


def fill(store: Store, count: int) -> None:
    def write(n: int) -> None:
        rec = record(n)
        store.put_bytes(Manifest.record_key(rec.id), dumps(rec.to_dict()), "application/json",
                        overwrite=True)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(write, range(count)))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def naive(manifest: Manifest) -> dict[str, str]:
    """The baseline: list, then GET every record (what planning would do without an index)."""
    out: dict[str, str] = {}
    for info in manifest.store.list("manifest/assets/"):
        data = json.loads(manifest.store.get_bytes(info.key))
        out[data["id"]] = data["status"]
    return out


def run(name: str, store: Store, count: int) -> None:
    t0 = time.perf_counter()
    fill(store, count)
    print(f"{name}: wrote {count} records in {time.perf_counter() - t0:.1f}s")
    manifest = Manifest(store)
    base_s, _ = timed(lambda: naive(manifest))
    cold_s, statuses = timed(manifest.statuses)
    assert isinstance(statuses, dict) and len(statuses) == count
    build_s, stats = timed(manifest.build_index)
    warm_s, _ = timed(manifest.statuses)
    changed = max(1, count // 100)
    for n in range(changed):
        manifest.save(record(n, "failed"))  # archived stays archived; citations merged
    for n in range(count, count + changed):
        manifest.save(record(n))
    incr_s, statuses = timed(manifest.statuses)
    assert isinstance(statuses, dict) and len(statuses) == count + changed
    index_size = store.head("manifest/index.jsonl")
    print(f"{name}: naive GET-per-record {base_s:.2f}s | statuses() cold {cold_s:.2f}s | "
          f"build_index {build_s:.2f}s ({stats}) | warm {warm_s:.2f}s | "
          f"after {2 * changed} changes {incr_s:.2f}s | index "
          f"{index_size.size / 1e6 if index_size else 0:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--s3-records", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("local", LocalStore(Path(tmp), fsync=False), args.records)
    if args.s3_records:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        with moto_s3() as endpoint:
            run("s3 (moto)", new_s3_store(endpoint), args.s3_records)


if __name__ == "__main__":
    main()
