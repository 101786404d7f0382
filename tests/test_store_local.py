"""LocalStore specifics: the on-disk layout equals the S3 keys, sidecars and temporary files
stay out of listings, writers in separate processes create an object once, and the fallback
for filesystems without hard links."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from archiver.store.keys import encode_path, media_key
from archiver.store.local import LocalStore
from tests.support import media


def test_layout_is_the_s3_key_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    data = media.gif()
    digest = hashlib.sha256(data).hexdigest()
    key = media_key(digest, "gif")
    assert key == f"media/{digest[:2]}/{digest}.gif"
    assert store.put(key, io.BytesIO(data), len(data), "image/gif", {"sha256": digest})
    assert (tmp_path / "archive" / key).read_bytes() == data
    # No temporary file is left beside the object.
    assert sorted(p.name for p in (tmp_path / "archive" / key).parent.iterdir()) == [
        f"{digest}.gif"]
    # The metadata is on the object's own file (no second file, no .meta tree).
    attribute = os.getxattr(tmp_path / "archive" / key, "user.archiver.meta")
    assert json.loads(attribute) == {"content_type": "image/gif", "metadata": {"sha256": digest}}
    assert not (tmp_path / "archive" / ".meta").exists()
    assert [i.key for i in store.list("")] == [key]


def test_no_sidecar_when_the_extension_says_it_all(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("manifest/index.jsonl", b"{}\n", "application/x-ndjson")
    store.put_bytes("manifest/assets/" + "a" * 64 + ".json", b"{}", "application/json")
    assert not (tmp_path / ".meta" / "manifest" / "assets").exists()
    info = store.head("manifest/assets/" + "a" * 64 + ".json")
    assert info is not None and info.content_type == "application/json"


def test_leftovers_of_a_crash_are_invisible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = media.jpeg()
    key = media_key(hashlib.sha256(data).hexdigest(), "jpg")
    path = tmp_path / key
    path.parent.mkdir(parents=True)
    (path.parent / ".tmp-abandoned").write_bytes(data[:100])  # a writer died mid-copy
    assert list(store.list("media/")) == []
    assert not store.exists(key)
    assert store.put(key, io.BytesIO(data), len(data), "image/jpeg")
    assert [i.key for i in store.list("media/")] == [key]


def test_overwrite_replaces_atomically_and_changes_the_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = "manifest/assets/" + "b" * 64 + ".json"
    store.put_bytes(key, b'{"status":"failed"}', "application/json")
    before = store.head(key)
    store.put_bytes(key, b'{"status":"skipped"}', "application/json", overwrite=True)
    after = store.head(key)
    assert before is not None and after is not None
    assert before.etag != after.etag  # even with the same size and within one clock tick
    assert store.get_bytes(key) == b'{"status":"skipped"}'


def _racer(root: str, key: str, data: bytes, start: multiprocessing.synchronize.Event,
           results: multiprocessing.Queue[tuple[bool, int]], n: int) -> None:
    start.wait()
    created = LocalStore(root).put(key, io.BytesIO(data), len(data), "image/png", {"n": str(n)})
    results.put((created, n))


def test_writers_in_separate_processes_create_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    data = media.png()
    key = media_key(hashlib.sha256(data).hexdigest(), "png")
    start = ctx.Event()
    results: multiprocessing.Queue[tuple[bool, int]] = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path), key, data, start, results, n))
             for n in range(4)]
    for p in procs:
        p.start()
    start.set()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert [created for created, _ in outcomes].count(True) == 1
    assert (tmp_path / key).read_bytes() == data
    # The object carries the metadata of the writer that created it, and only that.
    winner = next(n for created, n in outcomes if created)
    info = LocalStore(tmp_path).head(key)
    assert info is not None and info.metadata == {"n": str(winner)}


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-per-file"])
def test_threads_writing_at_once_share_commits_and_create_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool) -> None:
    """32 threads, each storing its own object with metadata and then the same shared one:
    every write returns durable under its name (group commit), the shared object is created by
    exactly one thread and gets only that thread's metadata, no temporary file is left."""
    from concurrent.futures import ThreadPoolExecutor

    from archiver.store import commit

    if not syncfs:
        monkeypatch.setattr(commit, "_SYNCFS", None)
    store = LocalStore(tmp_path)
    shared = media.png()
    shared_key = media_key(hashlib.sha256(shared).hexdigest(), "png")

    def writer(n: int) -> bool:
        own = media.png() + n.to_bytes(4, "big")
        key = media_key(hashlib.sha256(own).hexdigest(), "png")
        assert store.put(key, io.BytesIO(own), len(own), "image/png", {"n": str(n)})
        assert store.get_bytes(key) == own
        info = store.head(key)
        assert info is not None and info.metadata == {"n": str(n)}
        return store.put(shared_key, io.BytesIO(shared), len(shared), "image/png",
                         {"n": str(n)})

    with ThreadPoolExecutor(32) as pool:
        created = list(pool.map(writer, range(64)))
    store.close()
    assert created.count(True) == 1
    info = store.head(shared_key)
    assert info is not None and info.metadata == {"n": str(created.index(True))}
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    assert len(list(store.list("media/"))) == 65


@pytest.mark.parametrize("xattrs", [True, False], ids=["attribute", "sidecar"])
def test_a_sidecar_left_without_its_object_is_replaced(tmp_path: Path, xattrs: bool) -> None:
    """A sidecar a crash left (older layout) is replaced by the new object's, or shadowed by
    its attribute: readers see the new object's metadata either way."""
    store = LocalStore(tmp_path, xattrs=xattrs)
    data = media.png()
    key = media_key(hashlib.sha256(data).hexdigest(), "png")
    sidecar = tmp_path / ".meta" / (key + ".json")
    sidecar.parent.mkdir(parents=True)
    sidecar.write_text('{"content_type": "image/png", "metadata": {"asset-id": "old"}}')
    assert store.put(key, io.BytesIO(data), len(data), "image/png", {"asset-id": "new"})
    info = store.head(key)
    assert info is not None and info.metadata == {"asset-id": "new"}


def test_temporary_files_of_dead_writers_are_discarded(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    store = LocalStore(tmp_path)
    (tmp_path / "media" / "ab").mkdir(parents=True)
    (tmp_path / "media" / "ab" / f".tmp-{dead}-cafe-1").write_bytes(b"partial")
    mine = tmp_path / "media" / "ab" / f".tmp-{os.getpid()}-cafe-2"
    mine.write_bytes(b"being written")
    assert store.discard_leftovers() == 1
    assert [p.name for p in (tmp_path / "media" / "ab").iterdir()] == [mine.name]


def test_fallback_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some FUSE/SMB mounts refuse link(2); the store reserves the name with O_EXCL instead.
    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    store = LocalStore(tmp_path)
    data = media.jpeg()
    key = media_key(hashlib.sha256(data).hexdigest(), "jpg")
    assert store.put(key, io.BytesIO(data), len(data), "image/jpeg") is True
    assert store.put_bytes(key, b"else", "image/jpeg") is False
    assert store.get_bytes(key) == data
    assert [p.name for p in (tmp_path / key).parent.iterdir()] == [key.rsplit("/", 1)[1]]


@pytest.mark.parametrize(("article", "expected"), [
    ("posts/hello.md", "posts/hello.md"),
    ("../../etc/passwd", "%2E./%2E./etc/passwd"),
    ("/abs/path.md", "%2Fabs/path.md"),
    ("a//b", "a/%2Fb"),
    ("trailing/", "trailing%2F"),
    (".hidden/x", "%2Ehidden/x"),
    ("a\\b c?.md", "a%5Cb%20c%3F.md"),
    ("100%.md", "100%25.md"),
    ("文章/一.md", "%E6%96%87%E7%AB%A0/%E4%B8%80.md"),
])
def test_encode_path_keeps_ids_inside_and_distinct(article: str, expected: str) -> None:
    assert encode_path(article) == expected


def test_encode_path_hashes_ids_too_long_for_a_key() -> None:
    long_id = "x" * 300
    encoded = encode_path(long_id)
    assert encoded == "%hashed/" + hashlib.sha256(long_id.encode()).hexdigest()
    assert encode_path("y" * 300) != encoded


def test_a_forked_child_writes_through_the_store_its_parent_opened(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.put_bytes("manifest/a.json", b"{}", "application/json")  # the thread runs
    pid = os.fork()
    if pid == 0:  # the child: the parent's committing thread is not here
        code = 0 if store.put_bytes("manifest/b.json", b"[]", "application/json") else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get_bytes("manifest/b.json") == b"[]"
    assert store.put_bytes("manifest/c.json", b"1", "application/json")  # the parent's still


def test_a_sidecar_whose_object_fails_to_be_placed_is_discarded_not_left_waiting(
        tmp_path: Path) -> None:
    """An object that cannot be put at its name (its directory is gone) fails its writer, and
    the sidecar that follows it is discarded in the same cycle: before, the sidecar waited for
    an object that would never be placed, its writer forever and the committer spinning."""
    import threading

    from archiver.store.commit import Committer, Pending

    def staged(name: str, path: Path, after: Pending | None = None) -> Pending:
        tmp = str(tmp_path / f".tmp-{name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, name.encode())
        return Pending(fd, tmp, str(path), after=after)

    gone = tmp_path / "gone"
    obj = staged("object", gone / "a.jpg")
    side = staged("sidecar", gone / "a.jpg.meta", after=obj)
    committer = Committer()
    writer = threading.Thread(target=committer.commit, args=([obj, side],), daemon=True)
    writer.start()
    writer.join(timeout=10)
    try:
        assert not writer.is_alive(), "the writer was left waiting"
        assert isinstance(obj.error, FileNotFoundError) and not obj.created
        assert side.done.is_set() and not side.created
        assert not list(tmp_path.glob(".tmp-*"))  # both temporary files removed
        fine = staged("fine", tmp_path / "b.jpg")
        committer.commit([fine])  # the committer still serves
        assert fine.created and (tmp_path / "b.jpg").read_bytes() == b"fine"
    finally:
        committer.close()


def test_a_passed_readiness_check_holds_briefly_and_a_refusal_ends_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One statvfs per READY_FOR seconds while writes go through; after a refused write the
    next check looks at the file system again at once (and raises while it would refuse)."""
    import archiver.store.local as local

    now = [1000.0]
    monkeypatch.setattr(local.time, "monotonic", lambda: now[0])
    store = LocalStore(tmp_path / "archive")
    store.check()
    looks: list[int] = []
    real = store._statvfs

    def counting() -> os.statvfs_result:
        looks.append(1)
        return real()

    monkeypatch.setattr(store, "_statvfs", counting)
    store.ready_for_writes()
    store.ready_for_writes()
    assert len(looks) == 1  # held
    now[0] += local.READY_FOR
    store.ready_for_writes()
    assert len(looks) == 2  # looked again once it ran out
    refused = store._refusal(OSError(errno.EROFS, "Read-only file system"), "write", 10)
    assert isinstance(refused, local.StoreReadOnly)

    def still_refused() -> None:  # the probe write the check makes, refused as before
        raise refused

    monkeypatch.setattr(store, "check", still_refused)
    with pytest.raises(local.StoreReadOnly):
        store.ready_for_writes()  # at once, though the last check was just passed
    assert len(looks) == 3


def test_free_room_is_looked_at_once_per_ready_for_while_far_from_the_minimum(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An object is checked against FREE_MIN with one fstatvfs per READY_FOR seconds while
    what was written since the last look keeps well clear of it, and at once when not."""
    import archiver.store.local as local

    now = [1000.0]
    monkeypatch.setattr(local.time, "monotonic", lambda: now[0])
    looks: list[int] = []
    real = os.fstatvfs

    def counting(fd: int) -> os.statvfs_result:
        looks.append(fd)
        return real(fd)

    monkeypatch.setattr(local.os, "fstatvfs", counting)
    store = LocalStore(tmp_path / "archive")

    def put(n: int) -> None:
        body = f"object {n}".encode() * 100
        key = f"media/{n:02x}/{hashlib.sha256(body).hexdigest()}.bin"
        assert store.put(key, io.BytesIO(body), len(body), "application/octet-stream")

    put(1)
    put(2)
    put(3)
    assert len(looks) == 1  # held
    now[0] += local.READY_FOR
    put(4)
    assert len(looks) == 2  # ran out: looked again
    store._free = store._spent + local.FREE_MIN + local.ROOM_SLACK  # near the minimum now
    put(5)
    assert len(looks) == 3
    store.close()


def test_a_forked_child_syncs_with_its_own_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no syncfs, files are synced by a pool of threads. A child forked after
    the parent used that pool (the runner's processes) has none of its threads: its syncs must
    not wait on a pool that cannot run them (before: every write of the child hung)."""
    import signal

    from archiver.store import commit

    monkeypatch.setattr(commit, "_SYNCFS", None)

    def write_two(store: LocalStore, first: int) -> None:
        # Two files handed to the committer at once: a cycle of two syncs (the pool's).
        items = []
        for n in (first, first + 1):
            path = f"{tmp_path}/media/{n}.bin"
            fd, tmp = store._tmp_for(path)
            os.write(fd, b"%d" % n)
            items.append(commit.Pending(fd, tmp, path))
        commit.sync(items, [])
        for item in items:
            os.close(item.fd)
            commit.place(item)
            assert item.created and item.error is None

    write_two(LocalStore(tmp_path), 0)  # the parent's pool, its threads now idle
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        signal.alarm(60)  # a hang kills the child (SIGALRM): its status says so
        try:
            write_two(LocalStore(tmp_path), 10)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == \
        ["0.bin", "1.bin", "10.bin", "11.bin"]
