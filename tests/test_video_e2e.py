"""End to end: `archiver archive` on a ZAKER post with a v.qq.com player, through yt-dlp's real
``VQQVideoIE`` against the local v.qq.com over TLS (no stand-in extractor)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.manifest import Manifest
from archiver.scan import scan_paths
from archiver.settings import ScanSettings, StoreSettings
from archiver.store import open_store
from tests.conftest import CORPUS, FIXTURES, TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.vqq import Quality, VQQSite, connect_to

cli = load_commands()
VID = "z1001vqq0ab"
PAGE = f"https://v.qq.com/x/page/{VID}.html"


VIDEO, THUMB = media.mp4(120_000, seed=7), media.jpeg(48, 27)


@dataclass
class Archived:
    store: Path
    records: dict[str, dict[str, Any]]


@pytest.fixture
def archived(origin: OriginServer, tls_origin: TLSOrigin, tmp_path: Path) -> Archived:
    """The ZAKER video post archived: its video through the local v.qq.com, its GIF and still
    from the local ZAKER CDN."""
    VQQSite(tls_origin.server).publish(VID, [Quality("hd", VIDEO)], title="测试视频",
                                       thumbnail=THUMB)
    gif, still = media.gif(40, 30), media.jpeg(40, 30)
    origin.add("/202305/cc01_raw.gif", Response(gif, content_type="image/gif"))
    origin.add("/202305/cc01_1024.jpg", Response(still, content_type="image/jpeg"))
    rules = [*connect_to(tls_origin.server.port), f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}"]
    args = [arg for rule in rules for arg in ("--connect-to", rule)]
    store_dir = tmp_path / "archive"
    result = CliRunner().invoke(
        cli, ["archive", str(FIXTURES / "video"), "--store", str(store_dir), "--format", "jsonl",
              "--allow-private", "127.0.0.0/8", *args],
        env={"ARCHIVER_FETCH__CA_BUNDLE": tls_origin.ca_bundle, "ARCHIVER_VIDEO__RETRIES": "0",
             "ARCHIVER_VIDEO__TEMP_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    return Archived(store_dir, {r["origin"]: r for r in map(json.loads, result.stdout.splitlines())
                                if r.get("origin")})


def test_archive_stores_the_video_its_info_and_thumbnail(archived: Archived) -> None:
    records, store_dir, video, thumb = archived.records, archived.store, VIDEO, THUMB
    record = records[PAGE]
    assert record["status"] == "archived" and record["kind"] == "video"
    assert record["route"] == "yt-dlp" and record["extra"]["extractor"] == "VQQVideo"
    assert record["sha256"] == hashlib.sha256(video).hexdigest()
    assert str(record["key"]).endswith(".mp4") and record["content_type"] == "video/mp4"
    assert set(record["related"]) == {"info", "thumbnail"}

    with open_store(StoreSettings(url=str(store_dir))) as store:
        assert store.get_bytes(record["key"]) == video
        assert store.get_bytes(record["related"]["thumbnail"]) == thumb
        info = json.loads(store.get_bytes(record["related"]["info"]))
        saved = Manifest(store).load(record["id"])
    assert info["id"] == VID and info["title"] == "测试视频" and info["webpage_url"] == PAGE
    assert saved is not None and saved.related == record["related"]
    assert {c.article for c in saved.citations} == {"zaker-video"}
    assert records["http://zkres1.myzaker.com/202305/cc01_raw.gif"]["status"] == "archived"


BASE = "https://cdn.example.org/archive"


def _rewrite(archived: Archived, *args: str) -> str:
    result = CliRunner().invoke(cli, ["rewrite", *args, "--store", str(archived.store),
                                      "--base-url", BASE])
    assert result.exit_code == 0, result.output
    return result.output


def test_rewrite_video_tags_swaps_the_player_byte_exact_idempotent_and_reversible(
        archived: Archived, tmp_path: Path) -> None:
    plain, posts = tmp_path / "plain", tmp_path / "posts"
    shutil.copytree(FIXTURES / "video", plain)
    shutil.copytree(FIXTURES / "video", posts)
    _rewrite(archived, str(plain), "--in-place")  # URLs only: the player is kept
    urls_only = (plain / "zaker-video.md").read_bytes()
    assert PAGE.encode() in urls_only and b"<video" not in urls_only

    output = _rewrite(archived, str(posts), "--in-place", "--video-tags")
    assert "0 players kept" in output
    record = archived.records[PAGE]
    tag = (f'<video controls preload="none" src="{BASE}/{record["key"]}" '
           f'poster="{BASE}/{record["related"]["thumbnail"]}"></video>').encode()
    start = urls_only.index(b'<div style="background-color:#ececec"')
    end = urls_only.index(b"</iframe></div>", start) + len(b"</iframe></div>")
    swapped = urls_only[:start] + tag + urls_only[end:]
    article = posts / "zaker-video.md"
    assert article.read_bytes() == swapped  # the rest byte for byte as the URL rewrite left it

    _rewrite(archived, str(posts), "--in-place", "--video-tags")
    assert article.read_bytes() == swapped  # a second run changes nothing

    # Scanned again, the rewritten post holds nothing new: every URL is an archived copy.
    scanned = CliRunner().invoke(cli, ["scan", str(posts), "--format", "jsonl"])
    rows = [json.loads(line) for line in scanned.stdout.splitlines()]
    assert rows and all(r["status"] == "skipped" and r["reason"] == "archived-copy"
                        for r in rows), rows
    assert {r["url"] for r in rows} >= {f"{BASE}/{record['key']}",
                                        f"{BASE}/{record['related']['thumbnail']}"}

    with open_store(StoreSettings(url=str(archived.store))) as store:
        assert Manifest(store).load_swaps("zaker-video") == [{
            "origin": PAGE, "original": urls_only[start:end].decode(),
            "replacement": tag.decode()}]
    _rewrite(archived, str(posts), "--in-place", "--undo-video-tags")
    assert article.read_bytes() == urls_only  # the player back, byte for byte


def test_the_corpus_zaker_video_post_rewritten_with_video_tags(
        origin: OriginServer, tls_origin: TLSOrigin, tmp_path: Path) -> None:
    """Issue 12's acceptance case itself: the corpus's ZAKER video post (copied from ../shared
    into a temporary directory; the fixture in its format when the corpus is not beside the
    checkout), archived from local servers, rewritten with --video-tags twice, scanned again."""
    seed = CORPUS / "zaker-seed.md"
    source = seed if seed.is_file() else FIXTURES / "video" / "zaker-video.md"
    posts = tmp_path / "posts"
    posts.mkdir()
    shutil.copy(source, posts / source.name)
    refs = [r for s in scan_paths([str(posts)], ScanSettings()) for r in s.references]
    (page,) = [r.origin for r in refs if r.kind == "video"]
    VQQSite(tls_origin.server).publish(page.rsplit("/", 1)[1].removesuffix(".html"),
                                       [Quality("hd", VIDEO)], thumbnail=THUMB)
    for ref in refs:
        if ref.kind != "video":
            body = media.gif(40, 30) if ref.kind == "gif" else media.jpeg(40, 30)
            origin.add(urlsplit(ref.origin).path, Response(body, content_type="image/gif"
                                                           if ref.kind == "gif" else "image/jpeg"))
    rules = [*connect_to(tls_origin.server.port),
             *(f"{host}:80:127.0.0.1:{origin.port}" for host in ("zkres1.myzaker.com",
                                                                 "zkres2.myzaker.com"))]
    store_dir = tmp_path / "archive"
    result = CliRunner().invoke(
        cli, ["archive", str(posts), "--store", str(store_dir), "--format", "jsonl",
              "--allow-private", "127.0.0.0/8", *[a for r in rules for a in ("--connect-to", r)]],
        env={"ARCHIVER_FETCH__CA_BUNDLE": tls_origin.ca_bundle, "ARCHIVER_VIDEO__RETRIES": "0",
             "ARCHIVER_VIDEO__TEMP_DIR": str(tmp_path), "ARCHIVER_WAYBACK__ENABLED": "false"})
    assert result.exit_code == 0, result.output
    records = {r["origin"]: r for r in map(json.loads, result.stdout.splitlines())
               if r.get("origin")}
    video = records[page]
    archived = Archived(store_dir, records)

    _rewrite(archived, str(posts), "--in-place", "--video-tags")
    article = posts / source.name
    once = article.read_bytes()
    tag = (f'<video controls preload="none" src="{BASE}/{video["key"]}" '
           f'poster="{BASE}/{video["related"]["thumbnail"]}"></video>').encode()
    assert once.count(tag) == 1 and b"<iframe" not in once and b"v.qq.com" not in once
    _rewrite(archived, str(posts), "--in-place", "--video-tags")
    assert article.read_bytes() == once  # a second run changes nothing
    scanned = CliRunner().invoke(cli, ["scan", str(posts), "--format", "jsonl"])
    rows = [json.loads(line) for line in scanned.stdout.splitlines()]
    assert rows and all(r["reason"] == "archived-copy" for r in rows), rows
