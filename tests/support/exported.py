"""A small archive built by the real pipeline from a local origin, for the export tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archiver.drivers.job import archive_paths
from archiver.manifest import Manifest
from archiver.models import Citation, Record
from archiver.settings import Settings
from archiver.store.keys import media_key
from archiver.store.local import LocalStore
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.warcs import sha256_of

Z = "http://zkres1.myzaker.com"
PROXY = "http://cors.zfour.workers.dev/?"

JPEG = media.jpeg(40, 30)
DUP = media.jpeg(41, 31, color=(1, 2, 3))
GIF = media.gif(20, 10, frames=2)
GONE = media.png(12, 12)
OLD = media.webp(8, 8)  # an asset archived before exchanges were kept

ARTICLE_1 = f"""---
title: 'First <b>post</b>'
date: Wed, 09 Feb 2022 06:53:38 GMT
headimg: '{Z}/x/a.jpg'
---
<img src="{Z}/x/dup1.jpg"> <img src="{PROXY}{Z}/x/gone.png"> <img src="{Z}/x/old.gif">
"""
ARTICLE_2 = f"""---
title: Second
date: 2021-06-10 03:24:22
---
<p><img src="{Z}/x/dup2.jpg"><img src="{Z}/x/a.jpg"></p>
"""


@dataclass
class Built:
    store: Path
    records: dict[str, Record]  # origin -> record


def build_archive(origin: OriginServer, tmp_path: Path) -> Built:
    """Archive two articles from ``origin`` into ``tmp_path/archive`` through the real job:
    a plain asset cited twice, the same bytes under two origins, an asset only the proxy
    still has, a redirect; plus a record written before exchanges were kept."""
    origin.add("/x/a.jpg", Response(JPEG, content_type="image/jpeg",
                                    headers={"Cache-Control": "max-age=60"}))
    origin.add("/x/dup1.jpg", Response(DUP, content_type="image/jpeg"))
    origin.add("/x/dup2.jpg", Response(DUP, content_type="image/jpeg"))
    origin.add("proxy:/x/gone.png", Response(GONE, content_type="image/png"))
    origin.add("/x/old.gif", Response(status=302, redirect="/x/new.gif"))
    origin.add("/x/new.gif", Response(GIF, content_type="image/gif"))
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "one.md").write_text(ARTICLE_1, encoding="utf-8")
    (posts / "two.md").write_text(ARTICLE_2, encoding="utf-8")
    store = tmp_path / "archive"
    settings = Settings.model_validate({
        "fetch": {"allow_private": ["127.0.0.0/8"], "retries": 0,
                  "connect_to": [f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}",
                                 f"cors.zfour.workers.dev:80:127.0.0.1:{origin.port}"]},
        "store": {"url": str(store)}})
    result = archive_paths([str(posts)], settings)
    assert result.summary.statuses["archived"] == 5, result.summary
    manifest = Manifest(LocalStore(store))
    # A record from before exchanges were kept: no exchange, so it exports as a resource.
    key = media_key(sha256_of(OLD)[7:], "webp")
    LocalStore(store).put_bytes(key, OLD, "image/webp")
    manifest.save(Record(origin=f"{Z}/x/legacy.webp", kind="image", status="archived", key=key,
                         sha256=sha256_of(OLD)[7:], size=len(OLD), content_type="image/webp",
                         route="direct", created_at="2020-01-02T03:04:05+00:00",
                         citations=(Citation("two", ("img",)),)))
    records = {r.origin: r for r in manifest.iter_records()}
    return Built(store, records)
