"""Articles in: discovery, ids, stdin, and bad input that warns instead of crashing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import ScanError
from archiver.plan.assets import collect_assets
from archiver.scan import scan_paths, scan_text
from archiver.scan.articles import decode, discover
from archiver.settings import ScanSettings

ARTICLES = Path(__file__).parent / "fixtures" / "articles"
SETTINGS = ScanSettings()
POST = ("\n---\ntitle: 'ok'\nheadimg: 'https://a.example/h.jpg'\n---\n\n"
        '<div>   <img src="https://a.example/b.png">  </div>            ')


def test_ids_for_files_directories_and_stdin() -> None:
    scans = list(scan_paths([str(ARTICLES / "zaker-gif.md"), str(ARTICLES / "site"), "-"],
                            SETTINGS, stdin=io.StringIO(POST)))
    assert [(s.article, Path(s.path).name) for s in scans] == [
        ("zaker-gif", "zaker-gif.md"),
        ("2022/nested-post", "nested-post.md"),  # .txt and .hidden/ are left out
        ("index", "index.html"),
        ("stdin", "-"),
    ]
    assert [len(s.references) for s in scans] == [4, 2, 2, 2]


@pytest.mark.parametrize("root", ["tree", "tree/", "./tree", "."])
def test_directory_articles_are_named_and_ordered_as_their_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str) -> None:
    monkeypatch.chdir(tmp_path)
    names = ["a-b.md", "a/b.md", "a/a.b.md", "a.b/c.md", "Z.md", "a/b/c/d.html", "x.y.md",
             "a/.hidden.md", ".dir/e.md", "a/notes.txt", "b.MD"]
    for name in names:
        (tmp_path / "tree" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / name).write_text(POST, encoding="utf-8")
    found = [(s.article, s.path) for s in discover([root], SETTINGS)]
    # What naming by pathlib gives: sorted Paths, relative_to(root).with_suffix("").
    top = Path(root)
    paths = sorted(p for p in top.rglob("*") if p.is_file() and p.suffix.lower() in
                   {".md", ".html", ".htm", ".markdown"}
                   and not any(part.startswith(".") for part in p.relative_to(top).parts))
    assert found == [(p.relative_to(top).with_suffix("").as_posix(), str(p)) for p in paths]
    assert len(found) == 8


def test_missing_path_fails_before_scanning(tmp_path: Path) -> None:
    with pytest.raises(ScanError) as info:
        scan_paths([str(ARTICLES / "zaker-gif.md"), str(tmp_path / "nope.md")], SETTINGS)
    assert info.value.exit_code == 2 and "nope.md" in info.value.message


def test_extensions_are_case_insensitive(tmp_path: Path) -> None:
    (tmp_path / "A.MD").write_text(POST, encoding="utf-8")
    (tmp_path / "b.Markdown").write_text(POST, encoding="utf-8")
    (tmp_path / "c.htm").write_text(POST, encoding="utf-8")
    assert [s.article for s in scan_paths([str(tmp_path)], SETTINGS)] == ["A", "b", "c"]


def test_bom_crlf_and_leading_blank_lines() -> None:
    text = "\ufeff\r\n\r\n---\r\ntitle: crlf\r\nheadimg: https://a.example/h.jpg\r\n---\r\nbody"
    scan = scan_text(text, "x", SETTINGS)
    assert scan.title == "crlf" and [r.origin for r in scan.references] == [
        "https://a.example/h.jpg"]


def test_invalid_utf8_is_replaced_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_bytes(POST.encode().replace(b"ok", b"o\xff\xfek"))
    (scan,) = scan_paths([str(path)], SETTINGS)
    assert len(scan.references) == 2
    assert any("invalid UTF-8" in w for w in scan.warnings)
    assert scan.title is not None and "\ufffd" in scan.title


def test_utf16_with_bom_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "wide.md"
    path.write_bytes(POST.encode("utf-16"))
    (scan,) = scan_paths([str(path)], SETTINGS)
    assert len(scan.references) == 2


def test_binary_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    binary = tmp_path / "photo.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    controls = tmp_path / "controls.md"
    controls.write_bytes(b"\x01\x02\x03\x04\x05\x06\x07\x08" * 100)
    good = tmp_path / "good.md"
    good.write_text(POST, encoding="utf-8")
    scans = {s.article: s for s in scan_paths([str(tmp_path)], SETTINGS)}
    assert scans["photo"].references == () and "binary" in scans["photo"].warnings[0]
    assert "binary" in scans["controls"].warnings[0]
    assert len(scans["good"].references) == 2


def test_a_fifo_or_a_device_named_like_an_article_is_skipped_not_waited_on(
        tmp_path: Path) -> None:
    """A FIFO named post.md used to block the open until something wrote to it: the whole
    scan hung (pytest's timeout fails it). Only regular files are read."""
    os.mkfifo(tmp_path / "fifo.md")
    (tmp_path / "zero.md").symlink_to("/dev/zero")
    (tmp_path / "good.md").write_text(POST, encoding="utf-8")
    scans = {s.article: s for s in scan_paths([str(tmp_path)], SETTINGS)}
    assert scans["fifo"].warnings == ("skipped: not a regular file",)
    assert scans["zero"].warnings == ("skipped: not a regular file",)
    assert len(scans["good"].references) == 2


def test_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    path.write_text(POST + " " * 2000, encoding="utf-8")
    small = ScanSettings(max_article_bytes=1000)
    (scan,) = scan_paths([str(path)], small)
    assert scan.references == () and "cap" in scan.warnings[0]
    (piped,) = scan_paths(["-"], small, stdin=io.StringIO(POST + " " * 2000))
    assert piped.references == () and "cap" in piped.warnings[0]
    assert decode(b"x" * 1001, small).text is None


def test_stdin_without_a_stream_warns() -> None:
    (scan,) = scan_paths(["-"], SETTINGS)
    assert scan.references == () and scan.warnings


def test_malformed_yaml_falls_back_to_key_value_lines() -> None:
    text = ("\n---\ntitle: 'It's broken: yes'\nheadimg: 'https://a.example/h.jpg'\n"
            "images:\n - https://a.example/1.jpg\n - 'https://a.example/2.jpg'\n"
            "thumbnail: https://a.example/t.jpg\n---\n<img src='https://a.example/b.png'>")
    scan = scan_text(text, "x", SETTINGS)
    assert [r.where[0] for r in scan.references] == [
        "front_matter.headimg", "front_matter.thumbnail", "front_matter.images[0]",
        "front_matter.images[1]", "img[src]"]
    assert any("malformed YAML" in w for w in scan.warnings)


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("---\n- a\n- b\n---\n", "not a mapping"),
        ("---\ntitle: x\n<img src='https://a.example/b.png'>", "not closed"),
        ("---\n" + "[" * 5000 + "\n---\n", "YAML"),
        ("---\ndate: 2021-13-45\n---\n", "invalid value (month must be in 1..12)"),
        ("---\ndate: 2021-02-30 10:00:00\n---\n", "invalid value"),
    ],
)
def test_odd_front_matter(text: str, warning: str) -> None:
    scan = scan_text(text, "x", SETTINGS)
    assert any(warning in w for w in scan.warnings)


def test_unclosed_front_matter_body_is_still_scanned() -> None:
    scan = scan_text("---\ntitle: x\n<img src='https://a.example/b.png'>", "x", SETTINGS)
    assert [r.origin for r in scan.references] == ["https://a.example/b.png"]


def test_empty_and_front_matter_only() -> None:
    assert scan_text("", "x", SETTINGS).references == ()
    assert scan_text("---\n---\n", "x", SETTINGS).references == ()


def test_pathological_markup_is_linear() -> None:
    # Unclosed quotes and tags by the thousand must neither crash nor hang.
    text = '<img alt="' * 20000 + "<img src" * 20000 + "![a](" * 20000 + "url(" * 20000
    scan = scan_text(text, "x", SETTINGS)
    assert scan.article == "x"


def test_an_image_with_a_huge_list_of_copies_is_linear() -> None:
    """A GIF whose stills are a srcset of 150,000 candidates: one reference with 150,000
    alternates, scanned and planned in seconds (kept in lists, each looked through before an
    append, they cost 10**10 comparisons: minutes in the scan and again in the plan)."""
    n = 150_000
    srcset = ",".join(f"https://a.example/{i}.jpg {i + 1}w" for i in range(n))
    scan = scan_text(f'<img data-gif-url="https://a.example/a.gif" srcset="{srcset}">', "x",
                     SETTINGS)
    (ref,) = scan.references
    assert ref.kind == "gif" and len(ref.alternates) == n
    (asset,) = collect_assets([scan])
    assert asset.alternates == ref.alternates


MARKUP = st.sampled_from([
    "<img ", "src=", "data-gif-url=", "srcset=", '"', "'", ">", "<", "</video>", "<video",
    "<source ", "<a href=", "<iframe src=", "//v.qq.com/iframe/player.html?vid=", "vid=",
    "https://cors.zfour.workers.dev/?", "http://a.example/x.jpg", ".gif", " 2x,", "&amp;",
    "&#", "style=\"background:url(", ")", "![", "](", "[x]: ", "\n", "---\n", "title: '",
    "data:", "\x00", "\ufffd", "%3A%2F%2F", "data-vid=", "<!--", "<script>",
    "data-srcset=", "<picture>", " 480w", " 9999999999999w", " 1e999x", "(", ",",
])


@settings(max_examples=150, deadline=None)
@given(st.lists(MARKUP | st.text(max_size=8), max_size=60))
def test_fuzz_markup_never_crashes(pieces: list[str]) -> None:
    scan = scan_text("".join(pieces), "fuzz", SETTINGS)
    for ref in scan.references:
        assert ref.origin.startswith(("http://", "https://"))
        assert ref.kind in ("image", "gif", "video")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_bytes_never_crash(data: bytes) -> None:
    text = decode(data, SETTINGS)
    if text.text is not None:
        scan_text(text.text, "fuzz", SETTINGS)
    assert text.text is not None or text.warnings


def test_read_bytes_reads_whole_files_refuses_over_the_cap_and_reads_on_when_one_grew(
        tmp_path: Path) -> None:
    from archiver.scan.articles import read_bytes

    article = tmp_path / "a.md"
    article.write_bytes(b"x" * 5000)
    assert read_bytes(str(article), 5000) == b"x" * 5000
    assert read_bytes(str(article), 4999) == \
        "skipped: 5000 bytes is over the 4999-byte cap (scan.max_article_bytes)"
    assert read_bytes(str(tmp_path), 1 << 20) == "skipped: not a regular file"
    assert read_bytes(str(tmp_path / "gone.md"), 100).startswith("skipped: cannot read: ")
    # A file whose size says 0 but holds more (it grew since, as /proc's files always do):
    # read on to the cap, one byte past it at most (the caller then says it is too large).
    status = read_bytes("/proc/self/status", 1 << 20)
    assert isinstance(status, bytes) and status.startswith(b"Name:")
    capped = read_bytes("/proc/self/status", 10)
    assert isinstance(capped, bytes) and len(capped) == 11
