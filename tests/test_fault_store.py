"""Store faults: an S3 endpoint cut off and back (through a TCP proxy, moto keeps its data), a
missing bucket, and a local store that fills up or turns read-only under ``archiver archive``.
Each error lands in the right class of the tree, and a run after the fault clears archives
everything exactly once."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from archiver.errors import (
    BucketMissing,
    StoreDenied,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)
from archiver.manifest import Manifest
from archiver.store.local import LocalStore
from archiver.store.s3 import S3Store
from archiver.store.s3_errors import mapped
from tests.support import media
from tests.support.faults import TcpProxy, small_fs
from tests.support.origin import OriginServer, Response
from tests.support.stores import s3_settings
from tests.support.workers import Worker, run_cli, worker_env, write_article

pytestmark = pytest.mark.faults

MiB = 1024 * 1024


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[TcpProxy]:
    port = int(s3_endpoint.rsplit(":", 1)[1])
    p = TcpProxy(port).start()
    yield p
    p.stop()


def test_s3_cut_off_is_unavailable_then_back_with_its_data(aws_env: str,
                                                            proxy: TcpProxy) -> None:
    store = S3Store(f"s3://cut-{uuid.uuid4().hex[:12]}/a",
                    s3_settings(proxy.url, request_attempts=1))
    store.ensure_bucket()
    assert store.put_bytes("manifest/x.json", b"before", "application/json")
    proxy.cut()
    for call in (lambda: store.exists("manifest/x.json"),
                 lambda: store.put(f"media/{'0' * 64}.jpg", io.BytesIO(b"j"), 1, "image/jpeg"),
                 lambda: store.get_bytes("manifest/x.json")):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert info.value.retryable and "unavailable" in info.value.message
    proxy.restore()
    assert store.get_bytes("manifest/x.json") == b"before"
    store.close()


def test_missing_bucket_is_permanent_and_named(aws_env: str) -> None:
    store = S3Store("s3://no-such-bucket-faults/x", s3_settings(aws_env))
    with pytest.raises(BucketMissing) as info:
        store.put_bytes("manifest/x.json", b"{}", "application/json")
    assert not info.value.retryable and "'no-such-bucket-faults'" in info.value.message
    with pytest.raises(BucketMissing) as checked:
        store.check()
    assert checked.value.message == "bucket 'no-such-bucket-faults' does not exist"
    store.close()


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("SlowDown", 503, StoreUnavailable), ("InternalError", 500, StoreUnavailable),
    ("RequestTimeout", 400, StoreUnavailable), ("AccessDenied", 403, StoreDenied),
    ("NoSuchBucket", 404, BucketMissing),
])
def test_s3_error_codes_map_to_their_class(code: str, status: int, expected: type) -> None:
    exc = ClientError({"Error": {"Code": code, "Message": "m"},
                       "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")
    error = mapped(exc, "b", "put k")
    assert type(error) is expected
    assert error.retryable is (expected is StoreUnavailable)


def test_local_errors_map_to_full_and_read_only(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs", 256 * 1024) as fs:
        store = LocalStore(fs.path / "archive")
        store.check()
        with pytest.raises(StoreFull) as full:
            store.put_bytes("media/big.bin", os.urandom(512 * 1024), "application/octet-stream")
        assert full.value.code == "store-full" and str(fs.path) in full.value.message
        assert not list(store.list("media/"))  # nothing half-written under its key
        with pytest.raises(StoreFull):  # what a worker asks before its next download
            store.ready_for_writes()
        fs.resize(1024 * 1024)  # room for the refused write and its margin
        store.ready_for_writes()
        fs.read_only()
        with pytest.raises(StoreReadOnly):
            store.put_bytes("media/small.bin", b"x", "application/octet-stream")
        with pytest.raises(StoreReadOnly):
            store.check()
        with pytest.raises(StoreReadOnly):
            store.ready_for_writes()
        fs.writable()
        store.ready_for_writes()
        assert store.put_bytes("media/small.bin", b"x", "application/octet-stream")


def _assets(origin: OriginServer, folder: Path, n: int, size: int) -> dict[str, bytes]:
    bodies = {}
    urls = []
    for i in range(n):
        body = media.jpeg(16, 16, color=(i, 0, 0)) + os.urandom(size)
        path = f"/full/{i}_1024.jpg"
        origin.add(path, Response(body=body, content_type=None))
        bodies[path] = body
        urls.append(f"http://zkres1.myzaker.com{path}")
    for start in range(0, n, 10):
        write_article(folder, f"a{start}", urls[start:start + 10])
    return bodies


def _check_archive(root: Path, bodies: dict[str, bytes], origin: OriginServer) -> None:
    """Every asset archived once with its exact bytes, nothing else stored."""
    store = LocalStore(root)
    records = list(Manifest(store).iter_records())
    assert {r.status for r in records} == {"archived"} and len(records) == len(bodies)
    by_hash = {hashlib.sha256(b).hexdigest() for b in bodies.values()}
    keys = sorted(o.key for o in store.list("media/"))
    assert len(keys) == len(bodies)
    for key in keys:
        data = store.get_bytes(key)
        assert hashlib.sha256(data).hexdigest() in by_hash
        assert key.rsplit("/", 1)[1].startswith(hashlib.sha256(data).hexdigest())


def _run_archive(env: dict[str, str], articles: Path, root: Path) -> tuple[int, str, str]:
    proc = run_cli(["archive", str(articles), "--store", str(root), "-j", "4"], env)
    return proc.returncode, proc.stdout, proc.stderr


def _env(origin: OriginServer, processes: str = "1") -> dict[str, str]:
    return worker_env("redis://127.0.0.1:1/0", "http://127.0.0.1:1", "./unused", origin,
                      ARCHIVER_FETCH__RETRIES="0", ARCHIVER_RUNNER__PROCESSES=processes)


def test_objects_leave_room_for_their_records(tmp_path: Path) -> None:
    """A store filling up refuses the object that would leave less than ``FREE_MIN`` free,
    so the records of the objects it took can still be written: before, 100 KB objects whose
    sizes happened to fill the last pages left a run unable to write its records (its children
    died with a traceback, and those assets were stored but never reported)."""
    from archiver.store.local import FREE_MIN

    with small_fs(tmp_path / "fs", 1 * MiB) as fs:
        store = LocalStore(fs.path / "archive")
        stored = 0
        with pytest.raises(StoreFull):
            for n in range(20):
                body = os.urandom(107_500)
                key = f"media/{n:02x}/{hashlib.sha256(body).hexdigest()}.bin"
                store.put(key, io.BytesIO(body), len(body), "application/octet-stream",
                          {"asset-id": str(n)})
                stored += 1
        assert 0 < stored < 10 and fs.free_bytes() >= FREE_MIN
        assert store.put_bytes("manifest/segments/s.jsonl", b"r" * (FREE_MIN // 2),
                               "application/x-ndjson")
        assert len(list(store.list("media/"))) == stored
        store.close()


def test_an_object_already_stored_is_not_refused_by_a_store_that_cannot_take_a_copy(
        tmp_path: Path) -> None:
    """``put`` does not look for the object first: the create-only link finds it, and where
    the file system refuses the temporary copy (read-only, full) the bytes that are already
    there make it a success, as before, not a refusal."""
    with small_fs(tmp_path / "fs", 1 * MiB) as fs:
        store = LocalStore(fs.path / "archive")
        body = os.urandom(50_000)
        key = f"media/ab/{hashlib.sha256(body).hexdigest()}.bin"
        assert store.put(key, io.BytesIO(body), len(body), "application/octet-stream")
        assert not store.put(key, io.BytesIO(body), len(body), "application/octet-stream")
        fs.read_only()
        assert not store.put(key, io.BytesIO(body), len(body), "application/octet-stream")
        with pytest.raises(StoreReadOnly):  # a new object is refused
            store.put("media/cd/" + "c" * 64 + ".bin", io.BytesIO(body), len(body),
                      "application/octet-stream")
        fs.writable()
        assert store.get_bytes(key) == body
        assert sorted(os.listdir(fs.path / "archive" / "media" / "ab")) == [key[9:]]
        store.close()


@pytest.mark.parametrize(("fault", "processes"), [
    ("store-full", "1"), ("store-readonly", "1"), ("store-full", "2"), ("store-readonly", "2")])
def test_unwritable_local_store_stops_the_run_cleanly_then_a_rerun_completes(
        fault: str, processes: str, origin: OriginServer, tmp_path: Path) -> None:
    articles = tmp_path / "articles"
    articles.mkdir()
    full = fault == "store-full"
    # Full: 30 x 100 KB into 1 MiB fills up part way. Read-only: from the first write.
    bodies = _assets(origin, articles, 30 if full else 12, 100_000 if full else 10_000)
    with small_fs(tmp_path / "fs", 1 * MiB if full else 32 * MiB) as fs:
        root = fs.path / "archive"
        if not full:
            LocalStore(root).check()
            fs.read_only()
        code, out, err = _run_archive(_env(origin, processes), articles, root)
        assert code == 1, (out, err)
        assert "Traceback" not in err
        assert f"stopped: {fault}" in err and "not attempted" in err
        assert fault in out  # the failed assets are listed with their code
        if full:
            fs.resize(32 * MiB)  # the fault clears: room again
        else:
            assert sum(origin.hits.values()) <= 8  # what was in flight (2 x concurrency)
            fs.writable()
        code, out, err = _run_archive(_env(origin), articles, root)
        assert code == 0, (out, err)
        _check_archive(root, bodies, origin)


def test_worker_against_a_missing_bucket_exits_with_one_line(
        redis_url: str, aws_env: str, origin: OriginServer) -> None:
    env = worker_env(redis_url, aws_env, "s3://no-such-bucket-worker/a", origin)
    worker = Worker("nobucket", env, pool="solo", concurrency=1)
    try:
        assert worker.proc.wait(90) == 2
        lines = [line for line in worker.log().splitlines() if "archiver worker" in line]
        assert lines == ["archiver worker: cannot start: bucket 'no-such-bucket-worker' does "
                         "not exist (no-such-bucket, store s3://no-such-bucket-worker/a)"]
        assert "ready." not in worker.log() and "Traceback" not in worker.log()
    finally:
        worker.stop()
