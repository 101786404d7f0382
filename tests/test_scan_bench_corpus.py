"""bench.corpus: deterministic, shaped like the real posts, and scanned cleanly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from archiver.scan import scan_paths
from archiver.settings import ScanSettings
from bench.corpus import generate


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = generate(40, 3, tmp_path / "a")
    second = generate(40, 3, tmp_path / "b")
    other = generate(40, 4, tmp_path / "c")
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]


def test_generated_posts_scan_like_real_ones(tmp_path: Path) -> None:
    paths = generate(300, 11, tmp_path, origin_host_map={"zkres1.myzaker.com": "zk1.test"})
    kinds: Counter[str] = Counter()
    origins: Counter[str] = Counter()
    for scan in scan_paths([str(tmp_path)], ScanSettings()):
        assert scan.warnings == ()
        assert scan.references[0].where[0] == "front_matter.headimg"
        for ref in scan.references:
            kinds[ref.kind] += 1
            origins[ref.origin] += 1
            assert "zkres1.myzaker.com" not in ref.origin
            assert "workers.dev" not in ref.origin
    assert len(paths) == 300
    assert kinds["image"] > 600 and kinds["gif"] > 30 and kinds["video"] > 3
    assert any("zk1.test" in o for o in origins)
    assert any(n > 1 for n in origins.values())  # some assets are shared between articles
    assert any(p.name.startswith("zaker-") for p in paths)
    assert any(p.name.startswith("cnbeta-") for p in paths)
