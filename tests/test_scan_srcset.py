"""srcset: the largest candidate is the original to archive, the other candidates (and the src
beside them) its alternates, as a thumbnail is its original's; malformed and huge srcsets
neither crash nor cost more than their length."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.models import Reference
from archiver.scan import scan_text
from archiver.scan.srcset import ONE_X, candidates, largest_first
from archiver.settings import ScanSettings

SETTINGS = ScanSettings()
PROXY = "https://cors.zfour.workers.dev/?"
FIXTURE = Path(__file__).parent / "fixtures" / "srcset" / "ifanr-35900000001.md"
W = "http://img.news.example.com/wp-content/uploads/2023/06"
A = "https://a.example"


def refs(html: str) -> dict[str, Reference]:
    return {r.origin: r for r in scan_text(html, "x", SETTINGS).references}


def test_the_fixture_in_the_corpus_format() -> None:
    scan = scan_text(FIXTURE.read_text(encoding="utf-8"), FIXTURE.stem, SETTINGS)
    found = {r.origin: (r.where, r.alternates) for r in scan.references}
    zaker, cnbeta = "http://zkres2.myzaker.com/202306/648b1c2a", "https://static.cnbetacdn.com"
    assert found == {
        # The headimg shows the smallest size: it stays a reference in its own right there.
        f"{W}/fold-300x200.jpg": (("front_matter.headimg", "front_matter.thumbnail"), ()),
        # WordPress widths through the proxy: 2048w, then the others largest first.
        f"{W}/fold-2048x1366.jpg": (("img[srcset]",), (
            f"{W}/fold-1024x683.jpg", f"{W}/fold-768x512.jpg", f"{W}/fold-300x200.jpg")),
        # A lazy loader's data-srcset: 2x over data-src's 1x; the data: placeholder is no copy.
        f"{W}/hinge@2x.jpg": (("img[data-srcset]",), (f"{W}/hinge.jpg",)),
        # <picture>: each <source> and the <img> stand for themselves.
        f"{W}/screen-1280.webp": (("source[srcset]",), (f"{W}/screen-640.webp",)),
        f"{W}/screen-1280.jpg": (("img[srcset]",), (f"{W}/screen-640.jpg",)),
        # A link to the full image around a thumbnail with a srcset: the link still wins.
        f"{cnbeta}/article/2023/0601/d9a1.png": (("a[href]",), (
            f"{cnbeta}/thumb/article/2023/0601/d9a1.png",
            f"{cnbeta}/thumb/mini/article/2023/0601/d9a1.png")),
        # Commas inside URLs, a descriptor that says no size (1x), a trailing comma.
        f"{W}/spec,b.png": (("img[srcset]",), (
            f"{W}/spec,d.png", f"{W}/spec,c.png", f"{W}/spec,a.png")),
        # A ZAKER GIF: still the reference, every still (srcset ones too) its alternate.
        f"{zaker}_raw.gif": (("img[data-gif-url]",), (f"{zaker}_1024.jpg", f"{zaker}_640.jpg")),
    }
    by_origin = {r.origin: r for r in scan.references}
    assert by_origin[f"{W}/fold-2048x1366.jpg"].proxy == PROXY
    assert by_origin[f"{W}/fold-2048x1366.jpg"].url == f"{PROXY}{W}/fold-2048x1366.jpg"
    assert by_origin[f"{zaker}_raw.gif"].kind == "gif"
    assert scan.skipped == () and scan.warnings == ()


@pytest.mark.parametrize(("attrs", "original", "alternates"), [
    # Widths: the largest, whatever the order written; the src counts as a smaller copy.
    (f'src="{A}/m.jpg" srcset="{A}/m.jpg 640w, {A}/l.jpg 1280w, {A}/s.jpg 320w"',
     f"{A}/l.jpg", (f"{A}/m.jpg", f"{A}/s.jpg")),
    # Densities; an undescribed candidate is 1x.
    (f'srcset="{A}/1.jpg, {A}/3.jpg 3x, {A}/2.jpg 2x"', f"{A}/3.jpg", (f"{A}/2.jpg", f"{A}/1.jpg")),
    # The src is a 1x candidate: it beats a 0.5x srcset.
    (f'src="{A}/src.jpg" srcset="{A}/half.jpg 0.5x"', f"{A}/src.jpg", (f"{A}/half.jpg",)),
    # A tie: the srcset's candidate before the src (HTML adds the src only without a 1x).
    (f'src="{A}/src.jpg" srcset="{A}/set.jpg"', f"{A}/set.jpg", (f"{A}/src.jpg",)),
    # A tie between the two srcsets: the lazy loader's data-srcset, as data-src over src.
    (f'srcset="{A}/placeholder.jpg 2x" data-srcset="{A}/real.jpg 2x"', f"{A}/real.jpg",
     (f"{A}/placeholder.jpg",)),
    # Widths and densities mixed (HTML forbids it in one srcset): widths first.
    (f'srcset="{A}/x.jpg 3x" data-srcset="{A}/w.jpg 100w"', f"{A}/w.jpg", (f"{A}/x.jpg",)),
    # A height alone says no size; 1.5x and .5e1x are densities.
    (f'srcset="{A}/h.jpg 900h, {A}/f.jpg 1.5x, {A}/e.jpg .5e1x"', f"{A}/e.jpg",
     (f"{A}/f.jpg", f"{A}/h.jpg")),
    # Proxied candidates are unwrapped; the same origin unproxied is one image.
    (f'src="{A}/p.jpg" srcset="{PROXY}{A}/p.jpg 1x, {PROXY}{A}/p2.jpg 2x"', f"{A}/p2.jpg",
     (f"{A}/p.jpg",)),
    # The largest cannot be fetched (a data: URI, a relative path): the next largest is it.
    (f'srcset="data:image/png;base64,AAAA 4x, big.jpg 3x, {A}/2.jpg 2x, {A}/1.jpg 1x"',
     f"{A}/2.jpg", (f"{A}/1.jpg",)),
])
def test_the_largest_candidate_is_the_original(attrs: str, original: str,
                                               alternates: tuple[str, ...]) -> None:
    found = refs(f"<img {attrs}>")
    assert list(found) == [original]
    assert found[original].alternates == alternates


def test_an_unfetchable_largest_candidate_is_said_as_before() -> None:
    scan = scan_text(f'<img srcset="data:image/png;base64,AAAA 4x, big.jpg 3x, {A}/2.jpg 2x">',
                     "x", SETTINGS)
    assert [(s.where, s.reason) for s in scan.skipped] == [("img[srcset]", "data-uri"),
                                                         ("img[srcset]", "relative")]


def test_a_named_original_comes_before_the_srcset() -> None:
    # WordPress: data-orig-file is the upload itself, the srcset its resized copies.
    found = refs(f'<img src="{A}/a-300.jpg" data-orig-file="{A}/a.jpg" '
                 f'srcset="{A}/a-300.jpg 300w, {A}/a-1024.jpg 1024w" '
                 f'data-medium-file="{A}/a-300.jpg">')
    assert list(found) == [f"{A}/a.jpg"]
    assert found[f"{A}/a.jpg"].alternates == (f"{A}/a-1024.jpg", f"{A}/a-300.jpg")


def test_a_thumb_attribute_beside_a_srcset_is_an_alternate() -> None:
    found = refs(f'<img data-thumb-src="{A}/t.jpg" srcset="{A}/a.jpg 1x, {A}/a2.jpg 2x">')
    assert list(found) == [f"{A}/a2.jpg"]
    assert found[f"{A}/a2.jpg"].alternates == (f"{A}/a.jpg", f"{A}/t.jpg")


def test_a_video_source_srcset_stays_as_it_was() -> None:
    found = refs(f'<video><source srcset="{A}/v1.mp4 1x, {A}/v2.mp4 2x"></video>')
    assert {o: (r.kind, r.alternates) for o, r in found.items()} == {
        f"{A}/v2.mp4": ("video", ()), f"{A}/v1.mp4": ("video", ())}


@pytest.mark.parametrize(("srcset", "expected"), [
    ("a.jpg 480w, b.jpg 2x, c.jpg", [("a.jpg", (480, 1.0)), ("b.jpg", (-1, 2.0)),
                                     ("c.jpg", ONE_X)]),
    ("a.jpg 2x 300w", [("a.jpg", (300, 2.0))]),
    ("a.jpg 2x 3x, b.jpg 100w 200w", [("a.jpg", (-1, 2.0)), ("b.jpg", (100, 1.0))]),
    ("a.jpg wide, b.jpg -2x, c.jpg 2.x, d.jpg NaNx, e.jpg infx", [
        (u, ONE_X) for u in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg")]),
    ("a.jpg " + "9" * 5000 + "w, b.jpg 1e999x", [("a.jpg", ONE_X), ("b.jpg", (-1, float("inf")))]),
    ("a.jpg (1x, 9x) 2x, b.jpg", [("a.jpg", (-1, 2.0)), ("b.jpg", ONE_X)]),
    ("a.jpg (unclosed, b.jpg 2x", [("a.jpg", ONE_X)]),
    ("a.jpg,b.jpg 2x", [("a.jpg,b.jpg", (-1, 2.0))]),
    ("a.jpg,,, b.jpg 2W", [("a.jpg", ONE_X), ("b.jpg", (2, 1.0))]),
    ("data:image/png;base64,iVBO,RK5C 2x", [("data:image/png;base64,iVBO,RK5C", (-1, 2.0))]),
    ("", []), (" ,\t, ", []),
])
def test_candidates_and_their_sizes(srcset: str, expected: list[tuple[str, object]]) -> None:
    assert candidates(srcset) == expected


def test_a_long_srcset_is_one_reference() -> None:
    srcset = ",".join(f"{A}/{i}.jpg {i + 1}w" for i in range(5000))
    (ref,) = scan_text(f'<img src="{A}/s.jpg" srcset="{srcset}">', "x", SETTINGS).references
    assert ref.origin == f"{A}/4999.jpg" and len(ref.alternates) == 5000
    assert ref.alternates[:2] == (f"{A}/4998.jpg", f"{A}/4997.jpg")
    assert ref.alternates[-2:] == (f"{A}/0.jpg", f"{A}/s.jpg")


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SRCSET_PIECES = st.sampled_from([
    "https://a.example/x.jpg", "http://b.example/y,z.png", f"{PROXY}http://c.example/p.gif",
    "data:image/png;base64,AA,BB", "rel.jpg", " ", ",", ", ", "\t", "\n", "(", ")", "1x", "2x",
    " 1.5x", " 480w", " 960w", " 100h", " 9999999999999999999w", " 1e999x", " -1x", " x",
    " w", " NaNx", "\u00a0", "\u3000", "\x00", "&amp;", "'", '"',
])


@FUZZ
@given(st.lists(SRCSET_PIECES | st.text(max_size=6), max_size=40))
def test_fuzz_candidates_never_crash(pieces: list[str]) -> None:
    srcset = "".join(pieces)
    found = candidates(srcset)
    for url, (width, density) in found:
        assert url and not url.endswith(",") and not any(c.isspace() for c in url)
        assert url in srcset
        assert width >= -1 and density >= 0
    assert len(found) <= len(srcset)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 4000)), min_size=1, max_size=12))
def test_fuzz_the_widest_candidate_is_the_reference(sized: list[tuple[int, int]]) -> None:
    """Whatever the order and the ties, the reference is the first widest candidate and
    every other distinct candidate is its alternate, largest first."""
    written = [(f"{A}/{name}.jpg", width) for name, width in sized]
    srcset = ", ".join(f"{url} {width}w" for url, width in written)
    (ref,) = scan_text(f'<img srcset="{srcset}">', "x", SETTINGS).references
    widest = max(width for _, width in written)
    assert ref.origin == next(url for url, width in written if width == widest)
    order = largest_first(((url, (width, 1.0)) for url, width in written))
    assert ref.alternates == tuple(dict.fromkeys(u for u in order if u != ref.origin))
