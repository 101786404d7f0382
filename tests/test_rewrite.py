"""`archiver rewrite`: the pure token replacement on tricky inputs, the record lookup, the byte
codec, and end to end against articles archived by the real pipeline (real HTTP(S) servers,
a local store)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.manifest import Manifest
from archiver.models import ArticleScan, Reference, asset_id
from archiver.rewrite import decode_raw, plan_targets, rewrite_text
from archiver.scan import scan_paths, scan_text
from archiver.settings import ScanSettings, StoreSettings
from archiver.store import open_store
from archiver.urls import canonical_video
from tests.conftest import FIXTURES, TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response

SCAN = ScanSettings()
PROXY = "https://cors.zfour.workers.dev/?"
A = "http://zkres1.myzaker.com/202302/cc01_1024.jpg"
NEW = "https://media.example.org/arch/media/aa/a.jpg"
POSTS = FIXTURES / "rewrite" / "posts"
GOLDEN = FIXTURES / "rewrite" / "expected"
BASE = "https://media.example.org/arch"
cli = load_commands()


def test_every_written_form_of_one_origin_is_replaced() -> None:
    q = "http://x.test/p.jpg?a=1&b=2"
    text = (
        f"\n---\nheadimg: '{PROXY}{A}'\nthumbnail: {A}\ncover: \"{A}\"\n---\n"
        f'<img data-original="{A}" src="{PROXY}{A}"><img src={A} alt=x>'
        f'<a href="http://x.test/p.jpg?a=1&amp;b=2">q</a>'
        f'<img srcset="{A} 1x,{A}?x=1 2x, {PROXY}{A} 3x">'
        f'<p style="background:url(&quot;{A}&quot;)"></p><p style="background:url({A})"></p>\n'
        f'![a]({A} "t") ![b](<{A}>)\n[r]: {A}\n'
    )
    out = rewrite_text(text, {A: NEW, q: "https://m.test/q.jpg"}, SCAN)
    expected = (
        f"\n---\nheadimg: '{NEW}'\nthumbnail: {NEW}\ncover: \"{NEW}\"\n---\n"
        f'<img data-original="{NEW}" src="{NEW}"><img src={NEW} alt=x>'
        f'<a href="https://m.test/q.jpg">q</a>'
        f'<img srcset="{NEW} 1x,{A}?x=1 2x, {NEW} 3x">'
        f'<p style="background:url(&quot;{NEW}&quot;)"></p><p style="background:url({NEW})"></p>\n'
        f'![a]({NEW} "t") ![b](<{NEW}>)\n[r]: {NEW}\n'
    )
    assert out.text == expected
    wheres = [c.where for c in out.changes]
    assert wheres[:5] == ["front_matter.headimg", "front_matter.thumbnail", "front_matter.cover",
                          "img[data-original]", "img[src]"]
    assert "img[srcset]" in wheres and "a[href]" in wheres and "markdown" in wheres
    assert {c.origin for c in out.changes} == {A, q}
    assert out.changes[0].line == 3 and out.changes[0].old == PROXY + A
    # Idempotent: the rewritten text holds no target any more.
    assert rewrite_text(out.text, {A: NEW}, SCAN).changes == ()


@pytest.mark.parametrize("other", [
    f"{A}?x=1", f"{A}.webp", f"{A}x", f"{A}/b.jpg", f"x{A}", f"{PROXY}{A}?x=1",
    f"{A}#frag-but-longer".replace("#", "%23"), "http://zkres1.myzaker.com/202302/cc01_1024.jp",
])
def test_a_url_inside_a_longer_one_is_never_replaced(other: str) -> None:
    text = f'<img src="{other}"> {other}\n![x]({other})\nheadimg: {other}\n'
    assert rewrite_text(text, {A: NEW}, SCAN).text == text


def test_scheme_relative_and_https_are_their_own_origin() -> None:
    https = A.replace("http:", "https:")
    text = f'<img src="//zkres1.myzaker.com/202302/cc01_1024.jpg"><img src="{A}">'
    out = rewrite_text(text, {https: "https://m.test/s.jpg"}, SCAN)
    assert out.text == f'<img src="https://m.test/s.jpg"><img src="{A}">'


def test_gif_stills_point_at_the_gif_and_an_own_copy_elsewhere() -> None:
    gif, still = "http://zk.test/g_raw.gif", "http://zk.test/g_1024.jpg"
    text = (f"---\nheadimg: {still}\n---\n<img data-original=\"{still}\" data-gif-url=\"{gif}\""
            f" src=\"{PROXY}{still}\"><img src=\"{still}\">")
    targets = {gif: "https://m.test/g.gif", still: "https://m.test/s.jpg"}
    out = rewrite_text(text, targets, SCAN, {gif: frozenset({still})})
    assert out.text == (
        "---\nheadimg: https://m.test/s.jpg\n---\n<img data-original=\"https://m.test/g.gif\" "
        "data-gif-url=\"https://m.test/g.gif\" src=\"https://m.test/g.gif\">"
        "<img src=\"https://m.test/s.jpg\">")
    # Without the GIF archived, the stills keep their own copy (or stay as written).
    only_still = rewrite_text(text, {still: "https://m.test/s.jpg"}, SCAN, {})
    assert gif in only_still.text and still not in only_still.text


def test_code_fences_line_endings_and_quoted_spaces() -> None:
    spaced = "http://x.test/a b.jpg"
    text = (f"![x]({A})\r\n```\r\n![example]({A})\r\n```\r\n"
            f'<img src="{spaced}" alt="a b"><img src="http://x.test/a">\r\n')
    out = rewrite_text(text, {A: NEW, "http://x.test/a%20b.jpg": "https://m.test/ab.jpg"}, SCAN)
    assert out.text == (f"![x]({NEW})\r\n```\r\n![example]({A})\r\n```\r\n"
                        '<img src="https://m.test/ab.jpg" alt="a b"><img src="http://x.test/a">'
                        "\r\n")
    assert [c.line for c in out.changes] == [1, 5]


def test_plan_targets_sorts_references_by_record() -> None:
    video = "https://v.qq.com/x/page/abc12345.html"
    gif, still, failed = "http://zk.test/g.gif", "http://zk.test/g.jpg", "http://zk.test/f.jpg"
    copy = f"{BASE}/media/ab/{'ab' * 32}.jpg"
    refs = [Reference("a", ("img[src]",), "image", A, A),
            Reference("a", ("img[data-gif-url]",), "gif", gif, gif, alternates=(still,)),
            Reference("a", ("iframe[src]",), "video", video, video),
            Reference("a", ("img[src]",), "image", failed, failed),
            Reference("a", ("img[src]",), "image", "http://zk.test/new.jpg",
                      "http://zk.test/new.jpg"),
            Reference("a", ("img[src]",), "image", copy, copy)]
    rows = {asset_id(A): {"status": "archived", "key": "media/aa/a.jpg"},
            asset_id(gif): {"status": "archived", "key": "media/bb/g.gif"},
            asset_id(video): {"status": "archived", "key": "media/cc/v.mp4"},
            asset_id(failed): {"status": "failed", "key": None, "error": "http-404"},
            "x": {"status": "archived", "key": f"media/ab/{'ab' * 32}.jpg"}}
    plan = plan_targets(ArticleScan("a", "", tuple(refs)), rows, lambda k: f"{BASE}/{k}")
    assert plan.urls == {A: f"{BASE}/media/aa/a.jpg", gif: f"{BASE}/media/bb/g.gif"}
    assert plan.gifs == {gif: frozenset({still})}
    assert plan.kept == (video,) and plan.done == (copy,)
    assert [(m.origin, m.status, m.error) for m in plan.missing] == [
        (failed, "failed", "http-404"), ("http://zk.test/new.jpg", "pending", None)]


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbfa\r\nb\xff\xfec", "\ufeffé\r\n".encode("utf-16-le"),
    "é\n".encode("utf-16-be"), b"plain\n",
])
def test_decode_raw_gives_back_the_same_bytes(data: bytes) -> None:
    if data[:2] in (b"\xe9\x00", b"\x00\xe9"):
        data = (b"\xff\xfe" if data[0] else b"\xfe\xff") + data
    raw = decode_raw(data)
    assert raw.lossless and raw.encode(raw.text) == data
    assert raw.valid == (b"\xff\xfe" not in data[3:])


@pytest.mark.corpus
def test_real_corpus_every_reference_rewritten(corpus_dir: Path) -> None:
    """Every origin of every real post is found in all its written forms: after the rewrite
    the scanner sees none of them, and nothing but URL tokens changed."""
    total = 0
    for scan in scan_paths([str(corpus_dir)], SCAN):
        text = Path(scan.path).read_text(encoding="utf-8")
        targets = {r.origin: f"{BASE}/media/{asset_id(r.origin)[:2]}/{asset_id(r.origin)}.bin"
                   for r in scan.references if canonical_video(r.origin) is None}
        out = rewrite_text(text, targets, SCAN)
        left = {r.origin for r in scan_text(out.text, scan.article, SCAN).references}
        assert not left & set(targets), scan.article
        rebuilt = out.text
        for change in reversed(out.changes):  # undo each change: the original comes back
            at = rebuilt.rfind(change.new)
            rebuilt = rebuilt[:at] + change.old + rebuilt[at + len(change.new):]
        assert rebuilt == text, scan.article
        total += len(out.changes)
    assert total > 300


# End to end: archive with the real pipeline, then rewrite.

JPEG, WEBP, GIF, STILL = media.jpeg(64, 48), media.webp(20, 20), media.gif(), media.jpeg(40, 30)
CN = "/article/2023/0203/"
PLACEHOLDERS = {
    "A": A, "AW": A + ".webp", "G": "http://zkres2.myzaker.com/202302/cc02_raw.gif",
    **{name: f"https://static.cnbetacdn.com{CN}{file}" for name, file in [
        ("D1X", "dd01@2x.png"), ("D2", "dd02.jpg?w=1&h=2"),
        ("D3", "dd03.webp"), ("D4", "dd04.jpg"), ("D5", "dd05.jpg")]},
}  # dd01.png is not archived: the 1x of a srcset whose 2x is, it points at the 2x's copy
MISSING = "http://zkres2.myzaker.com/202302/cc09_1024.jpg"


@dataclass
class Archived:
    store: str
    keys: dict[str, str]  # origin -> key
    posts: Path  # a writable copy of the fixture posts


@pytest.fixture
def archived(origin: OriginServer, tls_origin: TLSOrigin, tmp_path: Path) -> Archived:
    http, tls = origin, tls_origin.server
    http.add("/202302/cc01_1024.jpg", Response(JPEG, content_type="image/jpeg"))
    http.add("/202302/cc01_1024.jpg.webp", Response(WEBP, content_type="image/webp"))
    http.add("/202302/cc02_raw.gif", Response(GIF, content_type="image/gif"))
    http.add("/202302/cc02_1024.jpg", Response(STILL, content_type="image/jpeg"))
    for i, name in enumerate(["dd01.png", "dd01@2x.png", "dd02.jpg?w=1&h=2", "dd03.webp",
                              "dd04.jpg", "dd05.jpg"]):
        body = media.png(10 + i, 10) if name.endswith("png") else (
            media.webp(10 + i, 10) if ".webp" in name else media.jpeg(10 + i, 10))
        tls.add(CN + name, Response(body))
    connect = [f"zkres1.myzaker.com:80:127.0.0.1:{http.port}",
               f"zkres2.myzaker.com:80:127.0.0.1:{http.port}",
               f"cors.zfour.workers.dev:443:127.0.0.1:{tls.port}",
               f"static.cnbetacdn.com:443:127.0.0.1:{tls.port}"]
    posts = tmp_path / "posts"
    shutil.copytree(POSTS, posts)
    store = str(tmp_path / "archive")
    args = ["archive", str(posts), "--store", store, "--allow-private", "127.0.0.0/8"]
    args += [a for rule in connect for a in ("--connect-to", rule)]
    env = {"ARCHIVER_FETCH__CA_BUNDLE": tls_origin.ca_bundle, "ARCHIVER_FETCH__RETRIES": "0"}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1, result.output  # cc09 is gone everywhere
    with open_store(StoreSettings(url=store)) as opened:
        rows = Manifest(opened).summaries()
    keys = {row["origin"]: row["key"] for row in rows.values() if row["status"] == "archived"}
    assert set(keys) == set(PLACEHOLDERS.values()), keys
    return Archived(store, keys, posts)


def _golden(name: str, keys: dict[str, str], base: str = BASE) -> str:
    text = (GOLDEN / f"{name}.golden").read_text(encoding="utf-8")
    for placeholder, origin_url in PLACEHOLDERS.items():
        text = text.replace(f"@@{placeholder}@@", f"{base}/{keys[origin_url]}")
    assert "@@" not in text
    return text


def _rewrite(archived: Archived, *args: str, env: dict[str, str] | None = None,
             ) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(cli, ["rewrite", "--store", archived.store, *args], env=env)
    events = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    return result.exit_code, events, result.output


def test_rewrite_out_mirrors_the_tree_then_is_a_no_op(archived: Archived, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events, output = _rewrite(archived, str(archived.posts), "--out", str(out),
                                    "--base-url", BASE, "--format", "jsonl")
    assert code == 1, output  # one reference is not archived
    missing = [e for e in events if e["event"] == "missing"]
    assert [(e["article"], e["origin"], e["status"]) for e in missing] == [
        ("missing-3003", MISSING, "failed")]
    assert {e["event"] for e in events} == {"change", "missing"}
    assert all(e["applied"] and str(e["to"]).startswith(BASE + "/media/")
               for e in events if e["event"] == "change")
    for name, rel in [("zaker-3001", "zaker-3001.md"), ("cnbeta-3002", "sub/cnbeta-3002.md"),
                      ("missing-3003", "missing-3003.md")]:
        assert (out / rel).read_text(encoding="utf-8") == _golden(name, archived.keys), rel
        assert (archived.posts / rel).read_bytes() == (POSTS / rel).read_bytes()  # untouched
    assert MISSING in (out / "missing-3003.md").read_text(encoding="utf-8")
    # The mirror, rewritten again, does not change: archived copies are not references to redo.
    before = {p: p.read_bytes() for p in out.rglob("*.md")}
    code, events, output = _rewrite(archived, str(out), "--in-place", "--base-url", BASE,
                                    "--allow-missing", "--format", "jsonl")
    assert code == 0, output
    assert [e["event"] for e in events] == ["missing"]
    assert {p: p.read_bytes() for p in out.rglob("*.md")} == before


def test_in_place_is_atomic_and_keeps_bom_crlf_and_mode(archived: Archived) -> None:
    path = archived.posts / "zaker-3001.md"
    original = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + original.replace(b"\n", b"\r\n"))
    os.chmod(path, 0o640)
    inode = os.stat(path).st_ino
    code, _, output = _rewrite(archived, str(path), "--in-place", "--base-url", BASE)
    assert code == 0, output
    assert "rewrote zaker-3001: 9 URLs" in output
    expected = _golden("zaker-3001", archived.keys).encode().replace(b"\n", b"\r\n")
    assert path.read_bytes() == b"\xef\xbb\xbf" + expected
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.stat(path).st_ino != inode  # replaced by rename, never written over
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "missing-3003.md", "sub", "zaker-3001.md"]  # no temporary file left behind


def test_invalid_utf8_is_refused_in_place_but_copied_exactly(archived: Archived,
                                                             tmp_path: Path) -> None:
    path = archived.posts / "zaker-3001.md"
    data = path.read_bytes().replace("来源".encode(), b"\xff\xfe", 1)
    path.write_bytes(data)
    code, events, output = _rewrite(archived, str(path), "--in-place", "--base-url", BASE,
                                    "--format", "jsonl")
    assert code == 1
    refused = [e for e in events if e["event"] == "refused"]
    assert len(refused) == 1 and "invalid UTF-8" in str(refused[0]["reason"])
    assert path.read_bytes() == data
    code, _, output = _rewrite(archived, str(path), "--out", str(tmp_path / "o"),
                               "--base-url", BASE)
    assert code == 0, output
    expected = _golden("zaker-3001", archived.keys).encode().replace("来源".encode(),
                                                                     b"\xff\xfe", 1)
    assert (tmp_path / "o" / "zaker-3001.md").read_bytes() == expected


def test_a_fifo_named_like_an_article_is_refused_not_waited_on(archived: Archived) -> None:
    fifo = archived.posts / "fifo.md"
    os.mkfifo(fifo)
    code, events, _ = _rewrite(archived, str(fifo), "--in-place", "--base-url", BASE,
                               "--format", "jsonl")
    assert code == 1
    assert [(e["event"], e["reason"]) for e in events if e["event"] == "refused"] == [
        ("refused", "not a regular file")]


def test_dry_run_writes_nothing_and_lists_changes(archived: Archived) -> None:
    before = {p: p.read_bytes() for p in archived.posts.rglob("*") if p.is_file()}
    code, _, output = _rewrite(archived, str(archived.posts / "sub"), "--dry-run",
                               "--base-url", BASE)
    assert code == 0, output
    assert "would rewrite cnbeta-3002: 11 URLs" in output
    assert f"img[srcset] {PLACEHOLDERS['D1X']} -> {BASE}/{archived.keys[PLACEHOLDERS['D1X']]}" \
        in output
    assert {p: p.read_bytes() for p in archived.posts.rglob("*") if p.is_file()} == before


def test_base_url_from_settings_or_the_store(archived: Archived, tmp_path: Path) -> None:
    cdn = "https://cdn.example.net/a"
    code, _, output = _rewrite(archived, str(archived.posts / "zaker-3001.md"), "--out",
                               str(tmp_path / "s"), env={"ARCHIVER_STORE__PUBLIC_BASE_URL": cdn})
    assert code == 0, output
    assert (tmp_path / "s" / "zaker-3001.md").read_text(encoding="utf-8") == _golden(
        "zaker-3001", archived.keys, cdn)
    code, _, output = _rewrite(archived, str(archived.posts / "zaker-3001.md"), "--out",
                               str(tmp_path / "f"))
    assert code == 0, output
    root = Path(archived.store).resolve().as_uri()
    assert (tmp_path / "f" / "zaker-3001.md").read_text(encoding="utf-8") == _golden(
        "zaker-3001", archived.keys, root)


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "o", "--in-place"], "exclude each other"),
    ([], "say where to write"),
    (["--dry-run", "--base-url", "ftp://x/"], "base URL must be"),
    (["--out", "POSTS/inner"], "inside the input directory"),
    (["--out", "POSTS"], "inside the input directory"),
])
def test_bad_options_are_usage_errors(archived: Archived, args: list[str], message: str) -> None:
    args = [a.replace("POSTS", str(archived.posts)) for a in args]
    code, _, output = _rewrite(archived, str(archived.posts), *args)
    assert code == 2 and message in output, output


def test_out_never_overwrites_an_input_file(archived: Archived) -> None:
    path = archived.posts / "zaker-3001.md"
    before = path.read_bytes()
    code, _, output = _rewrite(archived, str(path), "--out", str(archived.posts))
    assert code == 2 and "use --in-place" in output, output
    assert path.read_bytes() == before
