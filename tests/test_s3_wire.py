"""The fast path's own HTTP (archiver/store/s3_wire.py) against moto behind a real relay:
connections kept alive and reused, one that the server closed while idle replaced without
the client's fallback, HTTPS verified with the client's CA bundle, no own connection where
the client's session would go through a proxy, and a body that is not the one hashed refused
instead of sent again through the client."""

from __future__ import annotations

import hashlib
import io
import ssl
import time
from collections.abc import Iterator

import boto3
import pytest
import trustme
from botocore.config import Config

from archiver.errors import StoreError
from archiver.store.keys import media_key
from archiver.store.s3 import S3Store
from archiver.store.s3_wire import CHECK_AFTER, Sender
from tests.support import media
from tests.support.s3relay import S3Relay
from tests.support.stores import new_s3_store


def through_client(store: S3Store) -> list[str]:
    """The keys of the PutObjects made through ``store``'s boto3 client, one per call: a
    call that botocore sends again (it reused a connection the relay was closing, as
    ``drop_idle`` does after every answer; on a loaded machine its FIN can come after the
    next request) is still one PUT through the client, where counting sends made it two."""
    seen: list[str] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: seen.append(params["Key"]))
    return seen


def put_several(store: S3Store, count: int) -> None:
    """``count`` distinct images stored one after the other (the first through the client,
    which teaches the fast path the bucket's URL); each read back and checked."""
    stored: list[tuple[str, bytes]] = []
    for n in range(count):
        data = media.png() + bytes([n]) * (n + 1)
        key = media_key(hashlib.sha256(data).hexdigest(), "png")
        meta = {"sha256": hashlib.sha256(data).hexdigest(), "asset-id": f"{n:064x}"}
        assert store.put(key, io.BytesIO(data), len(data), "image/png", meta) is True
        stored.append((key, data))
    for key, data in stored:
        info = store.head(key)
        assert store.get_bytes(key) == data and info is not None
        assert info.content_type == "image/png" and info.metadata["sha256"] in key


def fast_puts(url: str, count: int) -> tuple[S3Store, Sender, list[str]]:
    """A store on a new bucket at ``url`` after ``put_several``: the store, its fast path's
    Sender and the PUTs its client sent (only the first, which teaches the fast path)."""
    store = new_s3_store(url)
    sent = through_client(store)
    put_several(store, count)
    sender = store._fast.sender
    assert sender is not None and len(sent) == 1 and not store._fast.off
    return store, sender, sent


@pytest.fixture
def keepalive(aws_env: str) -> Iterator[S3Relay]:
    relay = S3Relay(aws_env)
    yield relay
    relay.stop()


def test_connections_are_kept_alive_and_reused(keepalive: S3Relay) -> None:
    store, sender, sent = fast_puts(keepalive.url, 6)
    assert sender.opened == 1  # five PUTs, one after the other, on one connection
    # create-only on the kept connection too: an existing key is refused, not replaced
    data = media.png() + bytes([2]) * 3
    key = media_key(hashlib.sha256(data).hexdigest(), "png")
    assert store.put_bytes(key, b"other bytes", "image/png") is False
    assert store.get_bytes(key) == data and sender.opened == 1
    store.close()
    assert store.put_bytes("manifest/after-close.json", b"{}", "application/json")
    assert sender.opened == 2 and len(sent) == 1 and not store._fast.off


def test_a_body_that_is_not_the_one_hashed_is_not_stored(keepalive: S3Relay) -> None:
    """The relay checks each body against its signed sha256, as S3 does: the pipeline's
    sha256 travels with the PUT, so bytes that changed since they were hashed are refused,
    and not sent again through the client (which would sign what it reads)."""
    store, _, sent = fast_puts(keepalive.url, 2)  # right bodies pass the check
    hashed, changed = media.gif(), media.gif() + b"!"
    sha = hashlib.sha256(hashed).hexdigest()
    key = media_key(sha, "gif")
    with pytest.raises(StoreError, match="do not have the sha256"):
        store.put(key, io.BytesIO(changed), len(changed), "image/gif", {"sha256": sha})
    assert not store.exists(key) and len(sent) == 1 and keepalive.rejected == 1
    assert store.put(key, io.BytesIO(hashed), len(hashed), "image/gif", {"sha256": sha})
    store.close()


def test_a_connection_the_server_closed_while_idle_is_replaced(aws_env: str) -> None:
    """The server drops each connection after its answer without saying so: every reuse
    finds it closed before any answer, and the PUT goes again on a new connection, still on
    the fast path (no fallback to the client, no miss counted)."""
    relay = S3Relay(aws_env, drop_idle=True)
    try:
        store, sender, _ = fast_puts(relay.url, 5)
        assert store._fast._misses == 0 and sender.opened >= 4
        # Idle past CHECK_AFTER: polled before reuse, found closed and replaced.
        opened = sender.opened
        time.sleep(CHECK_AFTER + 0.1)
        assert store.put_bytes("manifest/later.json", b"{}", "application/json")
        assert sender.opened == opened + 1 and store._fast._misses == 0
        store.close()
    finally:
        relay.stop()


def test_https_is_verified_with_the_clients_ca_bundle(
        aws_env: str, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path_factory.mktemp("s3tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))  # boto3's own setting, read by both
    relay = S3Relay(aws_env, ssl_context=context)
    try:
        store, sender, _ = fast_puts(relay.url, 4)
        assert sender.tls is not None and sender.opened == 1

        # A CA the client does not trust: the fast path's handshake fails as the client's
        # does, and nothing is stored.
        other = tmp_path_factory.mktemp("s3tls-other") / "ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        monkeypatch.setenv("AWS_CA_BUNDLE", str(other))
        doubting = S3Store(store.url, store.settings)
        learnt = Sender.for_client(doubting.client, relay.url + "/")
        assert learnt is not None
        with pytest.raises(ssl.SSLCertVerificationError):
            learnt.put(f"/{store.bucket}/x", {"Content-Length": "1"}, io.BytesIO(b"x"), 1)
        store.close()
        doubting.close()
    finally:
        relay.stop()


def test_no_own_connection_where_the_session_goes_through_a_proxy() -> None:
    creds = {"aws_access_key_id": "a", "aws_secret_access_key": "b", "region_name": "us-east-1"}
    proxied = boto3.client("s3", endpoint_url="http://127.0.0.1:9000",
                           config=Config(proxies={"http": "http://127.0.0.1:9"}), **creds)
    direct = boto3.client("s3", endpoint_url="http://127.0.0.1:9000", **creds)
    assert Sender.for_client(proxied, "http://127.0.0.1:9000/bucket/") is None
    sender = Sender.for_client(direct, "http://127.0.0.1:9000/bucket/")
    assert sender is not None and (sender.host, sender.port) == ("127.0.0.1", 9000)
    assert sender.connect_timeout == direct.meta.config.connect_timeout


def test_a_field_that_could_split_the_request_is_refused() -> None:
    direct = boto3.client("s3", endpoint_url="http://127.0.0.1:9", aws_access_key_id="a",
                          aws_secret_access_key="b", region_name="us-east-1")
    sender = Sender.for_client(direct, "http://127.0.0.1:9/bucket/")
    assert sender is not None
    for target, fields in (("/bucket/k", {"Content-Type": "image/png\r\nX-Evil: 1"}),
                           ("/bucket/k HTTP/1.1\r\nX: y", {}),
                           ("/bucket/k", {"Bad Name": "v"})):
        with pytest.raises(ValueError):
            sender.put(target, fields, io.BytesIO(b""), 0)
    assert sender.opened == 0  # refused before any connection
