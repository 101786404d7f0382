"""A local store object's metadata on its own file (the extended attribute
``user.archiver.meta``), sidecars where the file system refuses attributes, archives of the
sidecar layout read, verified and recovered the same, and the crash recovery of an orphan
object from its attribute."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.drivers.job import archive_paths
from archiver.manifest import WRITERS_PREFIX, Manifest
from archiver.models import Asset
from archiver.settings import Settings
from archiver.store import meta as store_meta
from archiver.store import open_store
from archiver.store.keys import media_key
from archiver.store.local import META_DIR, LocalStore
from archiver.verify import verify_store
from tests.support import media
from tests.support.origin import OriginServer, Response

HOST = "xattr.example.com"
ATTR = "user.archiver.meta"


def stored(store: LocalStore, data: bytes, metadata: dict[str, str]) -> str:
    key = media_key(hashlib.sha256(data).hexdigest(), "png")
    assert store.put(key, io.BytesIO(data), len(data), "image/png", metadata)
    return key


def to_sidecar_layout(root: Path) -> int:
    """Rewrite an archive into the layout of every archive before attributes: each object's
    attribute moved to ``.meta/<key>.json``. How many moved."""
    moved = 0
    for path in (root / "media").rglob("*"):
        if not path.is_file():
            continue
        try:
            body = os.getxattr(path, ATTR)
        except OSError as exc:
            assert exc.errno == errno.ENODATA
            continue
        sidecar = root / META_DIR / (str(path.relative_to(root)) + ".json")
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_bytes(body)
        os.removexattr(path, ATTR)
        moved += 1
    return moved


def test_metadata_travels_on_the_object_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = stored(store, media.png(), {"asset-id": "a" * 64, "width": "4"})
    body = os.getxattr(tmp_path / key, ATTR)
    assert json.loads(body) == {"content_type": "image/png",
                                "metadata": {"asset-id": "a" * 64, "width": "4"}}
    assert not (tmp_path / META_DIR).exists()  # no second file, no second tree
    info = store.head(key)
    assert info is not None and info.metadata == {"asset-id": "a" * 64, "width": "4"}
    # A record overwritten with a type the extension does not say keeps it on the new file.
    record = "manifest/assets/" + "c" * 64 + ".json"
    store.put_bytes(record, b"{}", "text/plain", {"v": "1"})
    store.put_bytes(record, b"{ }", "text/plain", {"v": "2"}, overwrite=True)
    info = store.head(record)
    assert info is not None and (info.content_type, info.metadata) == ("text/plain", {"v": "2"})
    store.delete([key, record])
    assert store.head(key) is None and not (tmp_path / key).exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_sidecars_where_attributes_are_off(tmp_path: Path) -> None:
    """``xattrs=False`` (as on a file system without them): the sidecar layout, exactly."""
    store = LocalStore(tmp_path, xattrs=False)
    key = stored(store, media.png(), {"asset-id": "b" * 64})
    with pytest.raises(OSError) as none:
        os.getxattr(tmp_path / key, ATTR)
    assert none.value.errno == errno.ENODATA
    sidecar = tmp_path / META_DIR / (key + ".json")
    assert json.loads(sidecar.read_bytes()) == {"content_type": "image/png",
                                                "metadata": {"asset-id": "b" * 64}}
    for reader in (store, LocalStore(tmp_path)):  # read the same by a store using attributes
        info = reader.head(key)
        assert info is not None and info.metadata == {"asset-id": "b" * 64}
    LocalStore(tmp_path).delete([key])
    assert not sidecar.exists() and not (tmp_path / key).exists()


def test_a_refused_attribute_turns_the_store_to_sidecars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's answer of a file system without user attributes (EOPNOTSUPP) is simulated
    here: the write goes on with a sidecar, and so do the next ones without asking again; a
    body too large for the attribute space (E2BIG) goes to a sidecar for that object only."""
    answers = [errno.E2BIG, errno.EOPNOTSUPP]
    calls = []

    def refuse(fd: int, name: str, value: bytes) -> None:
        calls.append(name)
        raise OSError(answers.pop(0), "refused")

    monkeypatch.setattr(store_meta.os, "setxattr", refuse)
    store = LocalStore(tmp_path)
    keys = [stored(store, media.png() + bytes([n]), {"n": str(n)}) for n in range(3)]
    assert len(calls) == 2  # the third write did not try
    for n, key in enumerate(keys):
        assert (tmp_path / META_DIR / (key + ".json")).is_file()
        info = store.head(key)
        assert info is not None and info.metadata == {"n": str(n)}
    assert not list(tmp_path.rglob(".tmp-*"))


def test_an_archive_of_the_sidecar_layout_reads_verifies_and_reruns_the_same(
        origin: OriginServer, tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    imgs = []
    for i in range(4):
        path = f"/x/{i}.jpg"
        origin.add(path, Response(media.jpeg(16 + i, 8), content_type="image/jpeg"))
        imgs.append(f'<p><img src="http://{HOST}{path}"></p>')
    (posts / "post.md").write_text("---\ntitle: t\ndate: 2023-01-02\n---\n\n" + "\n".join(imgs),
                                   encoding="utf-8")
    settings = Settings().with_overrides(
        fetch={"connect_to": [f"{HOST}:80:127.0.0.1:{origin.port}"],
               "allow_private": ["127.0.0.0/8"], "retries": 0},
        store={"url": str(tmp_path / "archive")})
    assert archive_paths([str(posts)], settings).summary.statuses["archived"] == 4
    with open_store(settings.store) as store:
        before = {info.key: store.head(info.key) for info in store.list("media/")}
        assert to_sidecar_layout(tmp_path / "archive") == 4
        after = {info.key: store.head(info.key) for info in store.list("media/")}
        assert {k: (i.content_type, i.metadata) for k, i in before.items() if i} == \
            {k: (i.content_type, i.metadata) for k, i in after.items() if i}
        assert all(i and i.metadata.get("asset-id") for i in after.values())
        report = verify_store(store, Manifest(store))
        assert report.checked == 4 and report.ok == 4 and not report.problems
    origin.hits.clear()
    assert archive_paths([str(posts)], settings).summary.statuses.get("archived", 0) == 0
    assert not origin.hits


@pytest.mark.parametrize("layout", ["attribute", "sidecar"])
def test_an_orphan_object_of_a_dead_run_is_recovered_from_its_metadata(
        tmp_path: Path, layout: str) -> None:
    """A run stored an object, then died before its record was written (its marker left):
    the next run rebuilds the record from the object's metadata, read from its attribute or,
    in an archive of the older layout, from its sidecar."""
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    store = LocalStore(tmp_path, xattrs=layout == "attribute")
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    marker = {"writer": "dead", "host": socket.gethostname(), "pid": dead, "started": started}
    store.put_bytes(WRITERS_PREFIX + "dead", json.dumps(marker).encode(), "application/json")
    asset = Asset(origin=f"http://{HOST}/orphan.png", kind="image")
    key = stored(store, media.png(), {"asset-id": asset.id, "route": "direct",
                                      "width": "16", "height": "8"})
    (tmp_path / key).parent.joinpath(f".tmp-{dead}-cafe-1").write_bytes(b"half")  # its leftover
    assert (tmp_path / META_DIR).exists() == (layout == "sidecar")
    reader = LocalStore(tmp_path)  # the next run's store, attributes on
    manifest = Manifest(reader)
    orphans = manifest.orphans([asset])
    assert set(orphans.objects) == {asset.id}
    record = manifest.recovered(asset, orphans)
    assert (record.status, record.key, record.width, record.height, record.route) == \
        ("archived", key, 16, 8, "direct")
    assert record.content_type == "image/png"
    assert not list(tmp_path.rglob(".tmp-*"))  # the dead run's temporary file is gone
