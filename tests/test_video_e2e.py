"""End to end: `archiver archive` on a ZAKER post with a v.qq.com player, through yt-dlp's real
``VQQVideoIE`` against the local v.qq.com over TLS (no stand-in extractor)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.manifest import Manifest
from archiver.settings import StoreSettings
from archiver.store import open_store
from tests.conftest import FIXTURES, TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.vqq import Quality, VQQSite, connect_to

cli = load_commands()
VID = "z1001vqq0ab"
PAGE = f"https://v.qq.com/x/page/{VID}.html"


def test_archive_stores_the_video_its_info_and_thumbnail(
        origin: OriginServer, tls_origin: TLSOrigin, tmp_path: Path) -> None:
    video, thumb = media.mp4(120_000, seed=7), media.jpeg(48, 27)
    VQQSite(tls_origin.server).publish(VID, [Quality("hd", video)], title="测试视频",
                                       thumbnail=thumb)
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
    records = {r["origin"]: r for r in map(json.loads, result.stdout.splitlines())
               if r.get("origin")}
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
