"""`archiver export warc|wacz` on an archive built by the real pipeline against a local origin:
responses with the headers received, revisits for duplicate bytes and for origins reached
through a proxy or a redirect, resources for records without an exchange; digests checked by
warcio, the WACZ by the wacz package's validator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from wacz.util import validate_pages_jsonl_file

from archiver.cli.app import load_commands
from archiver.export import cdxj
from archiver.export.objects import SMALL
from archiver.manifest import Manifest
from archiver.models import Citation, Record
from archiver.store.keys import media_key
from archiver.store.local import LocalStore
from tests.support import media
from tests.support.exported import DUP, GIF, GONE, JPEG, OLD, PROXY, Built, Z, build_archive
from tests.support.origin import OriginServer
from tests.support.warcs import iter_members, read_warc, sha256_of

cli = load_commands()


@pytest.fixture
def built(origin: OriginServer, tmp_path: Path) -> Built:
    return build_archive(origin, tmp_path)


def _export(built: Built, kind: str, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["export", kind, str(out), "--store", str(built.store),
                                      *extra])
    return result.exit_code, result.output


def test_warc_export_holds_every_asset_once_with_provenance(built: Built,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out.warc.gz"
    code, output = _export(built, "warc", out)
    assert code == 0, output
    warc = read_warc(out)  # block and payload digests verified on every record
    assert warc.records[0].type == "warcinfo"
    assert "archiver" in warc.records[0].payload.decode()
    # one gzip member per record
    assert len(list(iter_members(out))) == len(warc.records)

    payload_records = warc.of_type("response", "resource")
    assert len(payload_records) == 5  # a, dup (once), gone, new.gif, legacy
    by_digest = {r.one("WARC-Payload-Digest"): r for r in payload_records}
    # every distinct stored object appears exactly once, with its sha256 as payload digest
    assert len(by_digest) == len(payload_records)
    for record in built.records.values():
        if record.origin.endswith("legacy.webp"):
            continue
        assert by_digest[f"sha256:{record.sha256}"]  # present

    a = built.records[f"{Z}/x/a.jpg"]
    [resp] = warc.by_uri(f"{Z}/x/a.jpg", "response")
    assert resp.payload == JPEG and resp.status == 200
    assert resp.one("WARC-Payload-Digest") == f"sha256:{a.sha256}"
    assert resp.one("WARC-Archiver-Origin") == a.origin
    assert resp.one("WARC-Archiver-Route") == "direct"
    assert resp.one("WARC-Archiver-Key") == a.key
    assert sorted(resp.headers["warc-archiver-citation"]) == ["one", "two"]
    assert resp.one("WARC-Date").startswith(a.attempts[-1].at[:19])
    [req] = warc.by_uri(f"{Z}/x/a.jpg", "request")
    assert req.one("WARC-Concurrent-To") == resp.one("WARC-Record-ID")
    assert req.payload == b""

    # the same bytes under a second URL: a revisit, not a second copy
    dup_first, dup_second = sorted([f"{Z}/x/dup1.jpg", f"{Z}/x/dup2.jpg"],
                                   key=lambda u: built.records[u].id)
    [original] = warc.by_uri(dup_first, "response")
    [revisit] = warc.by_uri(dup_second, "revisit")
    assert original.payload == DUP
    assert revisit.one("WARC-Profile").endswith("/revisit/identical-payload-digest")
    assert revisit.one("WARC-Refers-To-Target-URI") == dup_first
    assert revisit.one("WARC-Refers-To") == original.one("WARC-Record-ID")
    assert revisit.one("WARC-Payload-Digest") == sha256_of(DUP)

    # fetched through the proxy: the response is the proxy URL, the origin a revisit of it
    proxied = f"{PROXY}{Z}/x/gone.png"
    [via] = warc.by_uri(proxied, "response")
    assert via.payload == GONE and via.one("WARC-Archiver-Route") == "proxy"
    assert via.one("WARC-Archiver-Origin") == f"{Z}/x/gone.png"
    [stand_in] = warc.by_uri(f"{Z}/x/gone.png", "revisit")
    assert stand_in.one("WARC-Refers-To-Target-URI") == proxied

    # redirected: the target is the URL actually fetched; the origin refers to it
    [final] = warc.by_uri(f"{Z}/x/new.gif", "response")
    assert final.payload == GIF
    assert warc.by_uri(f"{Z}/x/old.gif", "revisit")

    # a record from before exchanges: a resource record with its type and stored date
    [legacy] = warc.by_uri(f"{Z}/x/legacy.webp", "resource")
    assert legacy.payload == OLD
    assert legacy.one("Content-Type") == "image/webp"
    assert legacy.one("WARC-Date") == "2020-01-02T03:04:05Z"

    # warcio's own checker agrees
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", str(out)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "digest pass" in check.stdout


def test_filters_select_by_article_and_capture_time(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "two.warc"
    code, output = _export(built, "warc", out, "--article", "two", "--format", "jsonl")
    assert code == 0, output
    warc = read_warc(out)
    origins = {r.one("WARC-Archiver-Origin") for r in warc.of_type("response", "resource",
                                                                     "revisit")}
    assert origins == {f"{Z}/x/a.jpg", f"{Z}/x/dup2.jpg", f"{Z}/x/legacy.webp"}
    out = tmp_path / "old.warc.gz"
    code, output = _export(built, "warc", out, "--until", "2021-01-01")
    assert code == 0, output
    assert [r.get("WARC-Target-URI") for r in read_warc(out).of_type("resource")] == \
        [f"{Z}/x/legacy.webp"]
    code, output = _export(built, "warc", out, "--since", "yesterday")
    assert code == 2 and "ISO 8601" in output


def test_a_damaged_object_is_left_out_and_reported(built: Built, tmp_path: Path) -> None:
    a = built.records[f"{Z}/x/a.jpg"]
    assert a.key
    path = built.store / a.key
    path.chmod(0o644)
    path.write_bytes(JPEG[:-1] + b"\0")
    (built.store / built.records[f"{Z}/x/old.gif"].key).unlink()  # type: ignore[operator]
    out = tmp_path / "out.warc.gz"
    code, output = _export(built, "warc", out)
    assert code == 1
    assert "corrupt" in output and "missing" in output
    warc = read_warc(out)
    assert not warc.by_uri(f"{Z}/x/a.jpg", "response", "revisit")
    assert warc.by_uri(f"{PROXY}{Z}/x/gone.png", "response")


def test_a_failed_export_leaves_no_file(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "out.warc.gz"
    code, _ = _export(built, "warc", out)
    assert code != 0 and not out.exists()


def test_a_store_error_while_reading_ahead_stops_the_export(built: Built,
                                                            tmp_path: Path) -> None:
    key = built.records[f"{Z}/x/old.gif"].key
    assert key
    unreadable = built.store / key
    unreadable.unlink()
    unreadable.symlink_to(unreadable.name)  # a loop: an error of the store, not a missing object
    out = tmp_path / "out.warc.gz"
    code, output = _export(built, "warc", out)
    assert code != 0 and "error: store: cannot read" in output, output
    assert not out.exists() and not list(tmp_path.glob(".out.warc.gz.*"))
    assert not [t.name for t in threading.enumerate() if t.name.startswith("export-")]


def test_a_large_video_streams_with_its_related_objects(built: Built, tmp_path: Path) -> None:
    store = LocalStore(built.store)
    video = os.urandom(SMALL + 70_000)  # past what is read whole: verified, then read again
    thumbnail = media.jpeg(16, 9, color=(9, 9, 9))
    info = b'{"title": "a video"}'
    keys = {}
    for name, data, ext, mime in (("video", video, "mp4", "video/mp4"),
                                  ("thumbnail", thumbnail, "jpg", "image/jpeg"),
                                  ("info", info, "json", "application/json")):
        keys[name] = media_key(sha256_of(data)[7:], ext)
        store.put_bytes(keys[name], data, mime)
    page = "https://v.qq.com/x/page/a0000000001.html"
    Manifest(store).save(Record(
        origin=page, kind="video", status="archived", key=keys["video"],
        sha256=sha256_of(video)[7:], size=len(video), content_type="video/mp4", route="yt-dlp",
        related={"thumbnail": keys["thumbnail"], "info": keys["info"]},
        created_at="2024-05-01T00:00:00+00:00", citations=(Citation("one", ("iframe",)),)))
    out = tmp_path / "out.warc.gz"
    code, output = _export(built, "warc", out)
    assert code == 0, output
    warc = read_warc(out)  # digests verified
    [resource] = warc.by_uri(page, "resource")
    assert resource.payload == video
    related = {r.one("WARC-Archiver-Related"): r for r in warc.by_uri(page, "metadata")}
    assert related["thumbnail"].payload == thumbnail and related["info"].payload == info
    assert related["info"].one("WARC-Refers-To") == resource.one("WARC-Record-ID")


def test_wacz_export_validates_and_indexes_every_origin(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "out.wacz"
    code, output = _export(built, "wacz", out, "--title", "test export")
    assert code == 0, output
    check = subprocess.run([sys.executable, "-m", "wacz", "validate", "-f", str(out)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Validation succeeded" in check.stdout

    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"archive/data.warc.gz", "indexes/index.cdx", "pages/pages.jsonl",
                "datapackage.json", "datapackage-digest.json"} <= names
        assert z.getinfo("archive/data.warc.gz").compress_type == zipfile.ZIP_STORED
        package = json.loads(z.read("datapackage.json"))
        assert package["wacz_version"] == "1.1.1" and package["title"] == "test export"
        index = z.read("indexes/index.cdx").decode().splitlines()
        pages = [json.loads(line) for line in z.read("pages/pages.jsonl").splitlines()]
        articles = [json.loads(line) for line in z.read("articles/manifests.jsonl").splitlines()]
        warc_bytes = z.read("archive/data.warc.gz")
    assert index == sorted(index)
    keys = {line.split(" ", 1)[0]: json.loads(line.split(" ", 2)[2]) for line in index}
    for record in built.records.values():  # the index finds every archived origin
        entry = keys[cdxj.key(record.origin)]
        assert entry["digest"] == f"sha256:{record.sha256}"
        # and the offset and length it gives are one record of the WARC
        chunk = warc_bytes[int(entry["offset"]):int(entry["offset"]) + int(entry["length"])]
        assert len(read_warc(_bytes(chunk)).records) == 1

    pages_file = tmp_path / "pages.jsonl"
    with zipfile.ZipFile(out) as z:
        pages_file.write_bytes(z.read("pages/pages.jsonl"))
    assert validate_pages_jsonl_file(str(pages_file))
    assert pages[0]["format"] == "json-pages-1.0"
    by_id = {page["id"]: page for page in pages[1:]}
    assert set(by_id) == {"one", "two"}
    assert by_id["one"]["title"] == "First <b>post</b>"
    assert by_id["one"]["date"] == "2022-02-09T06:53:38Z"
    assert by_id["two"]["date"] == "2021-06-10T03:24:22Z"
    assert {a["article"] for a in articles} == {"one", "two"}
    # each page is in the WARC, escaped, and shows the article's media by origin URL
    warc = read_warc(_bytes(warc_bytes))
    [page] = warc.by_uri(by_id["one"]["url"], "resource")
    html = page.payload.decode()
    assert "First &lt;b&gt;post&lt;/b&gt;" in html and f'src="{Z}/x/gone.png"' in html
    assert cdxj.key(by_id["one"]["url"]) in keys


def _bytes(data: bytes) -> BytesIO:
    return BytesIO(data)
