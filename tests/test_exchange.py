"""The record keeps the HTTP exchange that produced its bytes, bounded, and old records load."""

from __future__ import annotations

from pathlib import Path

from archiver.fetch.exchange import MAX_HEADER_BYTES, MAX_VALUE_BYTES
from archiver.manifest import Manifest
from archiver.models import Asset, Record
from archiver.pipeline import archive_asset, build_context
from archiver.store.local import LocalStore
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.test_fetch_http import ZAKER, make_settings

JPEG = media.jpeg(30, 20)


def _archive(origin: OriginServer, tmp_path: Path, asset: Asset) -> Record:
    with LocalStore(tmp_path / "archive") as store, \
            build_context(make_settings(origin, retries=0), store) as ctx:
        return archive_asset(asset, ctx)


def test_the_exchange_of_the_last_hop_is_kept_as_sent_and_received(
        origin: OriginServer, tmp_path: Path) -> None:
    origin.add("/old/a.jpg", Response(status=301, redirect="/new/a.jpg?v=2"))
    origin.add("/new/a.jpg?v=2", Response(JPEG, content_type="image/jpeg",
                                          headers={"X-Served-By": "Cache-ZZ", "ETag": '"e1"'}))
    record = _archive(origin, tmp_path, Asset(f"{ZAKER}/old/a.jpg", "image"))
    assert record.status == "archived"
    assert record.exchange is not None
    request, response = record.exchange["request"], record.exchange["response"]
    assert (request["method"], request["target"], request["version"]) == \
        ("GET", "/new/a.jpg?v=2", "HTTP/1.1")
    sent = dict(request["headers"])
    assert sent["Host"] == "zkres1.myzaker.com" and "Referer" not in sent
    assert (response["status"], response["reason"]) == (200, "OK")
    # as received: the server's own casing and order
    names = [name for name, _ in response["headers"]]
    assert names.index("Content-Type") < names.index("X-Served-By") < names.index("ETag")
    assert dict(response["headers"])["Content-Length"] == str(len(JPEG))
    assert not response["truncated"] and not request["truncated"]
    # what the manifest stored is what was returned
    stored = Manifest(LocalStore(tmp_path / "archive")).load(record.id)
    assert stored is not None and stored.exchange == record.exchange


def test_hostile_headers_are_bounded(origin: OriginServer, tmp_path: Path) -> None:
    headers = {f"X-Junk-{i}": "v" * 300 for i in range(200)}
    headers["X-Huge"] = "h" * (MAX_VALUE_BYTES * 3)
    origin.add("/b.jpg", Response(JPEG, content_type="image/jpeg", headers=headers))
    record = _archive(origin, tmp_path, Asset(f"{ZAKER}/b.jpg", "image"))
    assert record.status == "archived" and record.exchange is not None
    response = record.exchange["response"]
    assert response["truncated"]
    size = sum(len(name) + len(value) + 4 for name, value in response["headers"])
    assert size <= MAX_HEADER_BYTES


def test_a_record_written_before_exchanges_loads_without_one() -> None:
    old = {"origin": f"{ZAKER}/c.jpg", "kind": "image", "status": "archived",
           "key": "media/ab/" + "ab" * 32 + ".jpg", "sha256": "ab" * 32, "version": 1}
    record = Record.from_dict(old)
    assert record.exchange is None
    assert Record.from_dict(record.to_dict()) == record
