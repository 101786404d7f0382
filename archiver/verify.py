"""Fixity: re-read every archived object and check it against its record."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from archiver.errors import ObjectMissing
from archiver.manifest import Manifest
from archiver.models import Record
from archiver.store.base import Store

CHUNK = 1024 * 1024


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)


def hash_object(store: Store, key: str) -> tuple[str, int]:
    """sha256 and size of a stored object, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with store.open(key) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check(store: Store, record: Record) -> Iterator[dict[str, Any]]:
    keys: list[tuple[str, str | None, int | None]] = []
    if record.key:
        keys.append((record.key, record.sha256, record.size))
    keys += [(key, None, None) for key in record.related.values()]
    for key, sha, size in keys:
        base = {"key": key, "origin": record.origin, "id": record.id}
        try:
            got_sha, got_size = hash_object(store, key)
        except ObjectMissing:
            yield {**base, "problem": "missing"}
            continue
        # Keys are content addresses: the name itself must match what the object hashes to.
        expected = sha or key.rsplit("/", 1)[-1].split(".", 1)[0]
        if got_sha != expected:
            yield {**base, "problem": "mismatch", "expected": expected, "actual": got_sha}
        elif size is not None and got_size != size:
            yield {**base, "problem": "size", "expected": size, "actual": got_size}


def verify_store(store: Store, manifest: Manifest, workers: int = 8) -> VerifyReport:
    """Hash every object of every archived record; report missing and mismatched ones."""
    report = VerifyReport()
    archived = (r for r in manifest.iter_records() if r.status == "archived")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for problems in pool.map(lambda r: list(_check(store, r)), archived):
            report.checked += 1
            report.problems.extend(problems)
            report.ok += not problems
    return report
