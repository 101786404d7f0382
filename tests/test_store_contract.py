"""The Store contract, run over every backend: a local directory and S3 (moto over HTTP)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.errors import ObjectMissing, StoreRejected
from archiver.settings import MiB
from archiver.store.base import Store
from archiver.store.keys import media_key
from tests.support import media
from tests.support.stores import new_local_store, new_s3_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        the_store: Store = new_local_store(tmp_path)
    else:
        endpoint = request.getfixturevalue("aws_env")
        the_store = new_s3_store(endpoint)
    yield the_store
    the_store.close()


def key_of(data: bytes, ext: str) -> str:
    return media_key(hashlib.sha256(data).hexdigest(), ext)


def put(store: Store, key: str, data: bytes, content_type: str = "image/jpeg",
        metadata: dict[str, str] | None = None) -> bool:
    return store.put(key, io.BytesIO(data), len(data), content_type, metadata)


def test_put_then_read_back_every_way(store: Store) -> None:
    data = media.jpeg()
    key = key_of(data, "jpg")
    meta = {"sha256": hashlib.sha256(data).hexdigest(),
            "source-url": "http://zkres1.myzaker.com/图片/a.jpg?x=1"}

    assert not store.exists(key)
    assert put(store, key, data, "image/jpeg", meta) is True

    assert store.exists(key)
    assert store.get_bytes(key) == data
    with store.open(key) as fh:
        assert fh.read() == data
    info = store.head(key)
    assert info is not None
    assert (info.key, info.size, info.content_type) == (key, len(data), "image/jpeg")
    assert info.mtime > 0
    # Metadata comes back ASCII-only and identical from both stores.
    assert info.metadata == {
        "sha256": meta["sha256"],
        "source-url": "http://zkres1.myzaker.com/%E5%9B%BE%E7%89%87/a.jpg?x=1",
    }


def test_put_is_create_only_and_keeps_the_first_bytes(store: Store) -> None:
    first, second = media.png(color=(1, 2, 3)), media.png(color=(9, 9, 9))
    key = key_of(first, "png")
    assert put(store, key, first, "image/png", {"source-url": "http://a/1.png"}) is True
    assert put(store, key, second, "image/webp", {"source-url": "http://b/2.png"}) is False
    assert store.get_bytes(key) == first
    info = store.head(key)
    assert info is not None
    assert info.content_type == "image/png"
    assert info.metadata["source-url"] == "http://a/1.png"


def test_put_bytes_overwrites_only_when_asked(store: Store) -> None:
    key = "manifest/assets/" + "a" * 64 + ".json"
    assert store.put_bytes(key, b'{"v":1}', "application/json") is True
    assert store.put_bytes(key, b'{"v":2}', "application/json") is False
    assert store.get_bytes(key) == b'{"v":1}'
    assert store.put_bytes(key, b'{"v":3,"longer":true}', "application/json",
                           overwrite=True) is True
    assert store.get_bytes(key) == b'{"v":3,"longer":true}'
    info = store.head(key)
    assert info is not None and info.size == len(b'{"v":3,"longer":true}')


def test_list_by_prefix(store: Store) -> None:
    blobs = [media.jpeg(color=(i * 80, 0, 0)) for i in range(3)]
    media_keys = {key_of(b, "jpg"): len(b) for b in blobs}
    for key, b in zip(media_keys, blobs, strict=True):
        put(store, key, b, "image/jpeg", {"sha256": "x"})
    store.put_bytes("manifest/assets/" + "b" * 64 + ".json", b"{}", "application/json")
    store.put_bytes("manifest/articles/posts/a.md.json", b"{}", "application/json")
    store.put_bytes("manifest/index.jsonl", b"", "application/x-ndjson")

    listed = {info.key: info.size for info in store.list("media/")}
    assert listed == media_keys
    assert {i.key for i in store.list("manifest/assets/")} == {
        "manifest/assets/" + "b" * 64 + ".json"}
    assert {i.key for i in store.list("manifest/")} == {
        "manifest/assets/" + "b" * 64 + ".json", "manifest/articles/posts/a.md.json",
        "manifest/index.jsonl"}
    # A prefix is a string prefix, as on S3, not only a directory.
    assert {i.key for i in store.list("manifest/in")} == {"manifest/index.jsonl"}
    assert len(list(store.list(""))) == 6
    assert list(store.list("nothing/here/")) == []
    assert all(i.etag for i in store.list(""))


def test_concurrent_puts_of_one_key_create_it_once(store: Store) -> None:
    data = media.gif(frames=4)
    key = key_of(data, "gif")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(put(store, key, data, "image/gif"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.get_bytes(key) == data


def test_large_file_goes_up_whole(store: Store, tmp_path: Path) -> None:
    # Over the 6 MiB threshold the S3 store uses multipart with 5 MiB parts (3 parts here).
    path = tmp_path / "big.mp4"
    payload = media.mp4(payload_size=1024) + os.urandom(11 * MiB)
    path.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    key = media_key(digest, "mp4")
    with path.open("rb") as fh:
        assert store.put(key, fh, len(payload), "video/mp4", {"sha256": digest}) is True
    with path.open("rb") as fh:
        assert store.put(key, fh, len(payload), "video/mp4", {"sha256": digest}) is False
    got = hashlib.sha256()
    with store.open(key) as fh:
        while chunk := fh.read(MiB):
            got.update(chunk)
    assert got.hexdigest() == digest
    info = store.head(key)
    assert info is not None
    assert (info.size, info.content_type, info.metadata) == (
        len(payload), "video/mp4", {"sha256": digest})


def test_missing_key(store: Store) -> None:
    key = media_key("c" * 64, "png")
    assert store.exists(key) is False
    assert store.head(key) is None
    with pytest.raises(ObjectMissing) as excinfo:
        store.get_bytes(key)
    assert excinfo.value.code == "missing" and not excinfo.value.retryable
    with pytest.raises(ObjectMissing):
        store.open(key)


@pytest.mark.parametrize("key", ["../escape.jpg", "/abs/x.jpg", "media//x.jpg", ".meta/x.json",
                                 "media/../../x", "media\\x.jpg", "media/x\n.jpg", ""])
def test_unsafe_keys_are_rejected(store: Store, key: str) -> None:
    with pytest.raises(StoreRejected):
        put(store, key, b"data")
    with pytest.raises(StoreRejected):
        store.get_bytes(key)


def test_a_body_shorter_than_its_size_stores_nothing(store: Store) -> None:
    data = media.jpeg()
    key = key_of(data, "jpg")
    with pytest.raises(StoreRejected):
        store.put(key, io.BytesIO(data[:-10]), len(data), "image/jpeg")
    assert not store.exists(key)
    assert list(store.list("")) == []


def test_public_url_names_the_object(store: Store) -> None:
    key = media_key("d" * 64, "webp")
    url = store.public_url(key)
    assert url.endswith("/" + key)
    assert url.startswith(("file://", "http://"))
    assert os.path.basename(url) == "d" * 64 + ".webp"


def test_delete_removes_objects_and_ignores_missing_ones(store: Store) -> None:
    for n in range(3):
        store.put_bytes(f"manifest/changed/{n}", b"", "application/octet-stream")
    store.delete(["manifest/changed/0", "manifest/changed/2", "manifest/changed/never"])
    assert [info.key for info in store.list("manifest/changed/")] == ["manifest/changed/1"]
    store.delete([])
    assert store.exists("manifest/changed/1")
