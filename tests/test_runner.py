"""The in-process runner on real fetchers, the origin server and a local store: counts, how
many assets it takes in at once, where records are reported, and create-only saves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from archiver.drivers.runner import run
from archiver.manifest import Manifest
from archiver.models import Asset, Record
from archiver.pipeline import build_context
from archiver.store.local import LocalStore
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.stores import CountingStore
from tests.test_fetch_http import ZAKER, make_settings


def images(origin: OriginServer, n: int, missing: int = 0) -> list[Asset]:
    for i in range(n):
        origin.add(f"/r/{i}.jpg", Response(status=404) if i < missing
                   else Response(media.jpeg(20 + i, 10)))
    return [Asset(origin=f"{ZAKER}/r/{i}.jpg", kind="image") for i in range(n)]


def test_counts_bytes_and_records_on_the_calling_thread(origin: OriginServer,
                                                        tmp_path: Path) -> None:
    assets = images(origin, 6, missing=2)
    seen: list[tuple[str, str]] = []

    def on_record(record: Record) -> None:
        seen.append((record.origin, threading.current_thread().name))

    settings = make_settings(origin, retries=0)
    with LocalStore(tmp_path / "a") as store, build_context(settings, store) as ctx:
        summary = run(assets, ctx, concurrency=3, on_record=on_record)
        stored = {r.origin: r for r in Manifest(store).iter_records()}
    counts = summary.to_dict()
    assert {k: counts[k] for k in ("total", "archived", "failed", "skipped", "errors")} == {
        "total": 6, "archived": 4, "failed": 2, "skipped": 0, "errors": {"http-404": 2}}
    assert counts["bytes"] == sum(r.size or 0 for r in stored.values()) > 0
    assert sorted(o for o, _ in seen) == sorted(a.origin for a in assets) == sorted(stored)
    assert {name for _, name in seen} == {threading.current_thread().name}


def test_takes_in_at_most_twice_the_concurrency(origin: OriginServer, tmp_path: Path) -> None:
    assets = images(origin, 12)
    pulled = 0
    pulled_at_first_record: list[int] = []

    def lazily() -> Iterator[Asset]:
        nonlocal pulled
        for asset in assets:
            pulled += 1
            yield asset

    def on_record(record: Record) -> None:
        if not pulled_at_first_record:
            pulled_at_first_record.append(pulled)

    with LocalStore(tmp_path / "a") as store, \
            build_context(make_settings(origin, retries=0), store) as ctx:
        summary = run(lazily(), ctx, concurrency=2, on_record=on_record)
    # Four in flight, and the fifth taken from the iterator while waiting for one to finish.
    assert pulled_at_first_record == [5]
    assert summary.total == 12 and summary.failed == 0


def test_only_assets_with_a_record_are_read_before_saving(origin: OriginServer,
                                                          tmp_path: Path) -> None:
    new, old = images(origin, 2)
    store = CountingStore(LocalStore(tmp_path / "a"))
    with store, build_context(make_settings(origin, retries=0), store) as ctx:
        ctx.manifest.save(Record(origin=old.origin, kind="image", status="failed"))
        store.reset()
        run([new, old], ctx, recorded={old.id})
    read = {key for key in store.gets if key.startswith("manifest/assets/")}
    # The plan found no record for ``new``: saved create-only, never read; ``old`` is merged.
    assert read == {Manifest.record_key(old.id)}
