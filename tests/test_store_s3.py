"""S3Store specifics on moto over HTTP: conditional writes, the HEAD fallback when a server
answers 501 to ``If-None-Match`` (a real proxy in front of moto, tests/support/s3relay.py),
pagination, error mapping, aborted multipart uploads, endpoint and URL handling."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from archiver.errors import ConfigError, StoreError, StoreRejected
from archiver.settings import MiB, StoreSettings
from archiver.store import open_store
from archiver.store.keys import media_key
from archiver.store.local import LocalStore
from archiver.store.s3 import S3Store
from tests.support import media
from tests.support.s3relay import S3Relay
from tests.support.stores import new_s3_store, s3_settings


@pytest.fixture
def no_conditional(aws_env: str) -> Iterator[S3Relay]:
    """An S3-compatible server without conditional writes: moto behind a relay that answers
    501 NotImplemented to any request carrying If-None-Match."""
    proxy = S3Relay(aws_env, refuse_conditional=True)
    yield proxy
    proxy.stop()


def sha_key(data: bytes, ext: str) -> str:
    return media_key(hashlib.sha256(data).hexdigest(), ext)


def test_moto_honours_if_none_match_so_the_create_only_path_is_used(aws_env: str) -> None:
    store = new_s3_store(aws_env)
    data = media.jpeg()
    key = sha_key(data, "jpg")
    before = store.conditional_writes
    assert store.put(key, io.BytesIO(data), len(data), "image/jpeg") is True
    assert (before, store.conditional_writes) == (None, True)
    # Bypass the HEAD-first check: a racing writer's conditional PUT is refused by the server.
    assert store.put_bytes(key, b"other bytes", "image/jpeg") is False
    assert store.get_bytes(key) == data


def test_puts_after_the_first_take_the_fast_path_and_stay_create_only(aws_env: str) -> None:
    """Once the client has made one PUT, the next ones are signed and sent without it
    (s3_fast.py): same bytes, type and metadata stored, create-only kept; an unusual answer
    (here a wrong URL) sends the PUT through the client instead, and a few turn it off."""
    store = new_s3_store(aws_env)
    through_client: list[str] = []
    store.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: through_client.append(request.url))
    first, second, third = media.jpeg(), media.png(), media.gif()
    assert store.put(sha_key(first, "jpg"), io.BytesIO(first), len(first), "image/jpeg")
    assert len(through_client) == 1 and store._fast.base is not None
    key = sha_key(second, "png")
    assert store.put(key, io.BytesIO(second), len(second), "image/png",
                     {"asset-id": "a" * 64, "source-url": "http://example.com/x ü.png"})
    assert store.put(key, io.BytesIO(second), len(second), "image/png") is False
    assert store.put_bytes(key, b"other bytes", "image/png") is False
    assert len(through_client) == 1  # the three above never reached the client
    info = store.head(key)
    assert info is not None and info.content_type == "image/png" and info.size == len(second)
    assert info.metadata == {"asset-id": "a" * 64,
                             "source-url": "http://example.com/x %C3%BC.png"}
    assert store.get_bytes(key) == second

    store._fast.base = store._fast.base.replace(store.bucket, "no-such-bucket-here")
    for n in range(3):
        body = third + bytes([n])
        assert store.put(sha_key(body, "gif"), io.BytesIO(body), len(body), "image/gif")
        assert store.get_bytes(sha_key(body, "gif")) == body
    assert len(through_client) == 4 and store._fast.off


def test_head_fallback_when_the_server_rejects_conditional_writes(
        no_conditional: S3Relay, tmp_path: Path) -> None:
    store = new_s3_store(no_conditional.url)
    data = media.png()
    key = sha_key(data, "png")
    assert store.put(key, io.BytesIO(data), len(data), "image/png") is True
    assert store.conditional_writes is False  # detected from the 501, once
    assert no_conditional.rejected == 1
    assert store.put(key, io.BytesIO(b"x" * len(data)), len(data), "image/png") is False
    assert store.put_bytes(key, b"other", "image/png") is False
    assert store.get_bytes(key) == data
    assert no_conditional.rejected == 1  # never asked again

    # Multipart completes without the header too, and is create-only through the HEAD check.
    big = tmp_path / "big.bin"
    big.write_bytes(media.mp4(payload_size=512) + bytes(7 * MiB))
    big_key = sha_key(big.read_bytes(), "mp4")
    with big.open("rb") as fh:
        assert store.put(big_key, fh, big.stat().st_size, "video/mp4") is True
    with big.open("rb") as fh:
        assert store.put(big_key, fh, big.stat().st_size, "video/mp4") is False
    assert store.get_bytes(big_key) == big.read_bytes()


def test_multipart_complete_falls_back_when_only_complete_is_refused(
        no_conditional: S3Relay, tmp_path: Path) -> None:
    # The first conditional request this store makes is a CompleteMultipartUpload.
    store = new_s3_store(no_conditional.url)
    payload = media.mp4(payload_size=256) + bytes(6 * MiB)
    key = sha_key(payload, "mp4")
    assert store.put(key, io.BytesIO(payload), len(payload), "video/mp4") is True
    assert store.conditional_writes is False
    assert store.get_bytes(key) == payload
    assert list(store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])) == []


def test_conditional_writes_can_be_turned_off(aws_env: str) -> None:
    store = new_s3_store(aws_env, conditional_writes=False)
    data = media.webp()
    key = sha_key(data, "webp")
    assert store.put(key, io.BytesIO(data), len(data), "image/webp") is True
    assert store.put(key, io.BytesIO(data), len(data), "image/webp") is False
    assert store.conditional_writes is False


def test_a_failed_multipart_upload_is_aborted(aws_env: str) -> None:
    store = new_s3_store(aws_env)
    payload = bytes(7 * MiB)
    key = media_key("e" * 64, "mp4")
    with pytest.raises(StoreRejected):
        store.put(key, io.BytesIO(payload[: 6 * MiB]), len(payload), "video/mp4")
    assert not store.exists(key)
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_list_follows_every_page(aws_env: str) -> None:
    store = new_s3_store(aws_env, prefix="")
    store.page_size = 40  # 1000 in production; a smaller page keeps the test quick
    keys = [f"manifest/assets/{i:064x}.json" for i in range(125)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put_bytes(k, b"{}", "application/json"), keys))
    listed = [info.key for info in store.list("manifest/assets/")]
    assert sorted(listed) == keys
    assert all(info.size == 2 for info in store.list("manifest/assets/000"))


def test_prefix_isolates_stores_in_one_bucket(aws_env: str) -> None:
    one = new_s3_store(aws_env, prefix="one")
    two = S3Store(f"s3://{one.bucket}/two/deeper", one.settings)
    one.put_bytes("manifest/index.jsonl", b"1", "application/x-ndjson")
    two.put_bytes("manifest/index.jsonl", b"2", "application/x-ndjson")
    assert one.get_bytes("manifest/index.jsonl") == b"1"
    assert two.get_bytes("manifest/index.jsonl") == b"2"
    assert [i.key for i in two.list("")] == ["manifest/index.jsonl"]
    raw = store_keys(one)
    assert raw == ["one/manifest/index.jsonl", "two/deeper/manifest/index.jsonl"]


def store_keys(store: S3Store) -> list[str]:
    resp = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(obj["Key"] for obj in resp.get("Contents", []))


def test_missing_bucket_is_a_permanent_store_error(aws_env: str) -> None:
    store = S3Store("s3://no-such-bucket-here/x", s3_settings(aws_env))
    with pytest.raises(StoreRejected) as excinfo:
        store.put_bytes("manifest/index.jsonl", b"", "application/x-ndjson")
    assert excinfo.value.retryable is False
    assert excinfo.value.details["code"] == "NoSuchBucket"


def test_an_unreachable_endpoint_is_a_retryable_store_error(aws_env: str) -> None:
    from tests.support.services import free_port

    settings = StoreSettings(endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1",
                             addressing_style="path")
    store = S3Store("s3://bucket/x", settings)
    with pytest.raises(StoreError) as excinfo:
        store.get_bytes("manifest/index.jsonl")
    assert excinfo.value.retryable is True
    assert excinfo.value.code == "store-unavailable"


def test_endpoint_comes_from_the_aws_chain_when_unset(aws_env: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env)
    with open_store(StoreSettings(url="s3://chain-bucket/p", addressing_style="path")) as store:
        assert isinstance(store, S3Store)
        assert store.client.meta.endpoint_url == aws_env
        store.ensure_bucket()
        store.ensure_bucket()  # idempotent
        assert store.put_bytes("manifest/index.jsonl", b"x", "application/x-ndjson") is True
        assert store.public_url("media/ab/x y.jpg") == \
            f"{aws_env}/chain-bucket/p/media/ab/x%20y.jpg"


def test_open_store_by_scheme(tmp_path: Path) -> None:
    with open_store(StoreSettings(url=str(tmp_path / "a"))) as plain:
        assert isinstance(plain, LocalStore)
    with open_store(StoreSettings(url=(tmp_path / "b c").as_uri())) as local:
        assert isinstance(local, LocalStore) and local.root == tmp_path / "b c"
    with open_store(StoreSettings(url="s3://bucket/some/prefix/")) as s3:
        assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    for bad in ("http://example.com/x", "ftp://h/x", "s3:///nobucket", "s3://b/../x",
                "file://otherhost/x", ""):
        with pytest.raises(ConfigError):
            open_store(StoreSettings.model_construct(url=bad))  # past the settings' own check
