"""Large scans spread over processes give exactly what one process gives, in the same order
(through the scan cache too)."""

from __future__ import annotations

from pathlib import Path

from archiver.plan.scancache import CacheStats, scan_cached
from archiver.scan import scan_paths
from archiver.scan.core import PARALLEL_MIN_FILES
from archiver.settings import ScanSettings
from bench.corpus import generate


def test_parallel_scan_equals_sequential_scan(tmp_path: Path) -> None:
    generate(PARALLEL_MIN_FILES + 37, seed=3, out_dir=tmp_path / "posts")
    (tmp_path / "posts" / "zz-binary.md").write_bytes(b"\x00\x01\x02" * 100)
    sequential = list(scan_paths([str(tmp_path / "posts")], ScanSettings(workers=1)))
    parallel = list(scan_paths([str(tmp_path / "posts")], ScanSettings(workers=2)))
    assert len(parallel) == PARALLEL_MIN_FILES + 38
    assert parallel == sequential
    assert sum(len(s.references) for s in parallel) > PARALLEL_MIN_FILES
    assert parallel[-1].warnings and not parallel[-1].references
    # Through the scan cache: parsed by the processes when cold, by none when warm.
    for parsed in (len(parallel), 0):
        stats = CacheStats()
        assert list(scan_cached([str(tmp_path / "posts")], ScanSettings(workers=2),
                                stats)) == sequential
        assert stats.parsed == parsed and stats.hits == len(parallel) - parsed
