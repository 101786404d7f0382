"""End to end: an article whose original images hide behind thumbnails (an extensionless
``data-original-src``, a thumbnail inside a link to its original, a ``showimage`` wrapper) is
archived from local origins (real HTTP and HTTPS servers); the records keep the originals with
the thumbnails as alternates, and the rewritten article scans to nothing new."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from archiver.cli.app import load_commands
from tests.conftest import FIXTURES, TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response

ARTICLES = FIXTURES / "originals"
JIANSHU = "https://upload-images.jianshu.io/upload_images/2300-9a8b7c6d5e"
HEAD = "http://upload-images.jianshu.io/upload_images/2300-1b2c3d4e5f"
FULL, VIEWER = "http://cdn.news.example.com/2022/05/148.jpg", \
    "http://cdn.news.example.com/2022/05/149.png"
ICON = "http://cdn.news.example.com/static/weibo.png"
ANIMATED, PHOTO, BIG_PNG, HEAD_JPEG, ICON_PNG = media.gif(40, 30), media.jpeg(80, 60), \
    media.png(90, 70), media.jpeg(30, 30, (9, 9, 9)), media.png(8, 8)


def test_originals_behind_thumbnails_are_archived_with_the_thumbnails_as_alternates(
        origin: OriginServer, tls_origin: TLSOrigin, tmp_path: Path) -> None:
    tls = tls_origin.server
    # The extensionless original answers as a GIF, labelled as nothing in particular.
    tls.add("/upload_images/2300-9a8b7c6d5e", Response(ANIMATED, content_type=None))
    origin.add("/upload_images/2300-1b2c3d4e5f", Response(HEAD_JPEG, content_type="image/jpeg"))
    origin.add("/2022/05/148.jpg", Response(PHOTO, content_type="image/jpeg"))
    origin.add("/2022/05/149.png", Response(BIG_PNG, content_type="image/png"))
    origin.add("/static/weibo.png", Response(ICON_PNG, content_type="image/png"))
    rules = [f"upload-images.jianshu.io:443:127.0.0.1:{tls.port}",
             f"upload-images.jianshu.io:80:127.0.0.1:{origin.port}",
             f"cdn.news.example.com:80:127.0.0.1:{origin.port}",
             f"news.example.com:80:127.0.0.1:{origin.port}",
             f"cors.zfour.workers.dev:443:127.0.0.1:{tls.port}"]
    store = str(tmp_path / "archive")
    env = {"ARCHIVER_FETCH__CA_BUNDLE": tls_origin.ca_bundle, "ARCHIVER_FETCH__RETRIES": "0",
           "ARCHIVER_WAYBACK__ENABLED": "false"}
    options = ["--allow-private", "127.0.0.0/8", *[a for r in rules for a in ("--connect-to", r)]]
    cli = load_commands()
    result = CliRunner().invoke(cli, ["archive", str(ARTICLES), "--store", store,
                                      "--format", "jsonl", *options], env=env)
    assert result.exit_code == 0, result.output
    records = {r["origin"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == {JIANSHU, HEAD, FULL, VIEWER, ICON}
    for origin_url, body in ((JIANSHU, ANIMATED), (HEAD, HEAD_JPEG), (FULL, PHOTO),
                             (VIEWER, BIG_PNG), (ICON, ICON_PNG)):
        record = records[origin_url]
        assert record["status"] == "archived" and record["route"] == "direct", record["attempts"]
        assert record["sha256"] == hashlib.sha256(body).hexdigest()

    gif = records[JIANSHU]  # found in data-original-src, its kind known from its bytes
    assert gif["kind"] == "gif" and gif["content_type"] == "image/gif"
    assert gif["key"].endswith(".gif") and gif["frames"] == 3
    assert gif["alternates"] == [JIANSHU.replace("https:", "http:") +
                                 "?imageMogr2/auto-orient/strip%7CimageView2/2/w/400/format/webp"]
    assert records[FULL]["alternates"] == ["http://cdn.news.example.com/2022/05/148_S.jpg"]
    assert records[VIEWER]["alternates"] == ["http://cdn.news.example.com/2022/05/149_S.png"]
    assert records[VIEWER]["urls"] == [
        "http://news.example.com/showimage/2022/0515/149.shtml?"
        "http://cdn.news.example.com/2022/05/149.png"]
    # Thumbnails, the viewer page and the share link are never requested.
    assert origin.hits["/2022/05/148_S.jpg"] == origin.hits["/2022/05/149_S.png"] == 0
    assert origin.hits["/showimage/2022/0515/149.shtml"] == 0
    assert not any("share" in path for path in origin.hits)
    assert tls.proxy_hits == {}  # the originals answered directly

    # Rewritten, the thumbnails and the viewer link point at the originals' copies, and a
    # scan of the rewritten article finds nothing new.
    out = tmp_path / "out"
    rewrite = CliRunner().invoke(cli, ["rewrite", str(ARTICLES), "--store", store,
                                       "--base-url", "https://media.example.org/a",
                                       "--out", str(out)], env=env)
    assert rewrite.exit_code == 0, rewrite.output
    text = (out / "jianshu-3001.md").read_text(encoding="utf-8")
    assert "148_S.jpg" not in text and "149_S.png" not in text and "showimage" not in text
    assert text.count(f"https://media.example.org/a/{records[FULL]['key']}") == 2
    scan = CliRunner().invoke(cli, ["scan", "--format", "jsonl", str(out)], env={
        "ARCHIVER_STORE__PUBLIC_BASE_URL": "https://media.example.org/a"})
    assert scan.exit_code == 0, scan.output
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    assert all(row.get("reason") == "archived-copy" for row in rows), rows


def test_when_the_original_is_gone_its_thumbnail_is_archived_as_the_alternate(
        origin: OriginServer, tmp_path: Path) -> None:
    origin.add("/2022/05/148_S.jpg", Response(PHOTO, content_type="image/jpeg"))
    origin.add("/2022/05/149_S.png", Response(BIG_PNG, content_type="image/png"))
    origin.add("/2022/05/149.png", Response(status=503, headers={"Retry-After": "0"}))
    # 148.jpg answers 404 (the default); the Wayback Machine is not asked in this test.
    store = str(tmp_path / "archive")
    result = CliRunner().invoke(load_commands(), [
        "archive", str(ARTICLES), "--store", store, "--format", "jsonl",
        "--allow-private", "127.0.0.0/8",
        "--connect-to", f"::127.0.0.1:{origin.port}"],  # every host to the local origin
        env={"ARCHIVER_FETCH__RETRIES": "0", "ARCHIVER_WAYBACK__ENABLED": "false"})
    records = {r["origin"]: r for r in map(json.loads, result.stdout.splitlines())
               if r.get("origin")}
    full = records[FULL]
    assert full["status"] == "archived" and full["route"] == "alternate"
    assert full["fetched_url"] == "http://cdn.news.example.com/2022/05/148_S.jpg"
    assert full["extra"]["alternate"] == full["fetched_url"]
    assert full["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert [(a["route"], a["status"]) for a in full["attempts"]] == [
        ("direct", 404), ("alternate", 200)]
    # An original that is only unavailable (503) is retried later, not replaced.
    assert records[VIEWER]["status"] == "failed" and records[VIEWER]["route"] is None
    assert origin.hits["/2022/05/149_S.png"] == 0
