"""The real posts in ../shared/corpus/real, checked against an independent regex oracle.

The oracle reads the raw files with plain regular expressions (no BeautifulSoup, no
archiver.scan code) and states what the scanner must have found.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

import pytest

from archiver.models import ArticleScan
from archiver.scan import scan_paths
from archiver.settings import ScanSettings

pytestmark = pytest.mark.corpus

PROXY = "https://cors.zfour.workers.dev/?"
IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
IFRAME_SRC = re.compile(r"""<iframe\b[^>]*\bsrc\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
A_MEDIA = re.compile(r"""<a\b[^>]*\bhref\s*=\s*"(https?://[^"]+\.(?:jpe?g|png|gif|webp))\"""",
                     re.IGNORECASE)


def oracle_origin(value: str) -> str:
    """The origin by hand: entities decoded, the one proxy of this corpus stripped."""
    value = html.unescape(value).strip()
    if value.startswith(PROXY):
        value = value[len(PROXY):]
    return value.split("#", 1)[0]


def attrs(tag: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in ATTR.finditer(tag)}


@pytest.fixture(scope="module")
def scans(corpus_dir: Path) -> dict[str, tuple[ArticleScan, str]]:
    out = {}
    for scan in scan_paths([str(corpus_dir)], ScanSettings()):  # no exception on any post
        out[scan.article] = (scan, Path(scan.path).read_text(encoding="utf-8"))
    assert len(out) == len(list(corpus_dir.glob("*.md")))
    return out


def test_every_img_source_is_found(scans: dict[str, tuple[ArticleScan, str]]) -> None:
    checked = 0
    for article, (scan, text) in scans.items():
        known = {r.origin for r in scan.references}
        known |= {a for r in scan.references for a in r.alternates}
        for tag in IMG.findall(text):
            for name, value in attrs(tag).items():
                if re.match(r"\s*https?://", html.unescape(value)):
                    checked += 1
                    assert oracle_origin(value) in known, (article, name, value)
    assert checked > 134  # every <img> of the corpus has at least one http(s) source


def test_every_gif_url_is_a_gif_with_its_still(
    scans: dict[str, tuple[ArticleScan, str]],
) -> None:
    pairs = 0
    for article, (scan, text) in scans.items():
        refs = {r.origin: r for r in scan.references}
        for tag in IMG.findall(text):
            found = attrs(tag)
            if "data-gif-url" not in found:
                continue
            pairs += 1
            gif = refs[oracle_origin(found["data-gif-url"])]
            assert gif.kind == "gif", article
            still = oracle_origin(found.get("data-original") or found["src"])
            assert still in gif.alternates, article
            # The still is not a reference of its own through this <img>.
            if still in refs:
                assert all(w.startswith("front_matter.") for w in refs[still].where), article
    assert pairs == 3


def test_tencent_iframes_become_page_urls(scans: dict[str, tuple[ArticleScan, str]]) -> None:
    videos = 0
    for article, (scan, text) in scans.items():
        origins = {r.origin for r in scan.references if r.kind == "video"}
        for src in IFRAME_SRC.findall(text):
            if "v.qq.com" in src:
                vid = re.findall(r"([A-Za-z0-9]{11})(?:\.html)?(?:&|$)", src)[0]
                assert f"https://v.qq.com/x/page/{vid}.html" in origins, article
                videos += 1
        sohu = sum("tv.sohu.com" in src for src in IFRAME_SRC.findall(text))
        assert sohu == sum(s.reason == "unsupported-video" for s in scan.skipped), article
    assert videos == 1


def test_full_size_links_are_references(scans: dict[str, tuple[ArticleScan, str]]) -> None:
    for article, (scan, text) in scans.items():
        origins = {r.origin for r in scan.references}
        for href in A_MEDIA.findall(text):
            assert oracle_origin(href) in origins, article


def test_no_proxied_origin_and_totals(scans: dict[str, tuple[ArticleScan, str]]) -> None:
    totals: Counter[str] = Counter()
    for scan, _ in scans.values():
        for ref in scan.references:
            assert "workers.dev" not in ref.origin and "wsrv.nl" not in ref.origin, ref
            assert ref.origin.startswith(("http://", "https://")) and "#" not in ref.origin
            if "workers.dev" in ref.url:
                assert ref.proxy == PROXY
            totals[ref.kind] += 1
        totals["skipped"] += len(scan.skipped)
        totals["warnings"] += len(scan.warnings)
        totals["articles"] += 1
    line = "  ".join(f"{k}={totals[k]}" for k in (
        "articles", "image", "gif", "video", "skipped", "warnings"))
    print(f"\nreal corpus totals: {line}")
    assert totals["articles"] == len(scans), line
    assert totals["gif"] >= 10 and totals["video"] == 1 and totals["warnings"] == 0, line
