"""End to end: `archiver archive` on articles we wrote, against real local HTTP(S) servers and
both stores (a local directory and S3 on moto's server)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.manifest import Manifest
from archiver.models import Record
from archiver.settings import StoreSettings
from archiver.store import open_store
from archiver.store.base import Store
from tests.conftest import FIXTURES, TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response

ARTICLES = FIXTURES / "e2e"
cli = load_commands()

JPEG = media.jpeg(64, 48)
GIF = media.gif(40, 30, frames=3)
STILL = media.jpeg(40, 30, color=(0, 0, 255))
PNG_PROXY_ONLY = media.png(32, 32)
THUMB = media.jpeg(20, 20, color=(9, 9, 9))
THUMB_PNG = media.png(16, 16, color=(1, 1, 1))
FULL_PNG = media.png(64, 64, color=(2, 2, 2))
WEBP = media.webp(20, 20)

EXPECTED = {
    "http://zkres1.myzaker.com/202301/aa01_1024.jpg": JPEG,
    "http://zkres2.myzaker.com/202301/aa02_raw.gif": GIF,
    "http://zkres2.myzaker.com/202301/aa03_1024.jpg": PNG_PROXY_ONLY,
    "https://static.cnbetacdn.com/thumb/article/2023/0102/bb01.jpg": THUMB,
    "https://static.cnbetacdn.com/article/2023/0102/bb02.png": FULL_PNG,
    "https://static.cnbetacdn.com/article/2023/0102/bb03.webp": WEBP,
}


@dataclass
class Site:
    http: OriginServer
    tls: OriginServer
    env: dict[str, str]
    args: list[str]


@pytest.fixture
def site(origin: OriginServer, tls_origin: TLSOrigin) -> Site:
    """The two servers playing the ZAKER CDN (http), the cnBeta CDN and the CORS proxy (https)."""
    http, tls = origin, tls_origin.server
    http.add("/202301/aa01_1024.jpg", Response(JPEG, content_type="image/jpeg"))
    http.add("/202301/aa02_raw.gif", Response(GIF, content_type="image/gif"))
    http.add("/202301/aa02_1024.jpg", Response(STILL, content_type="image/jpeg"))
    # aa03 is gone from the origin (404 by default); only the proxy still has it.
    tls.add("proxy:/202301/aa03_1024.jpg", Response(PNG_PROXY_ONLY, content_type="image/png"))
    tls.add("/thumb/article/2023/0102/bb01.jpg", Response(THUMB, content_type="image/jpeg"))
    tls.add("/thumb/article/2023/0102/bb02.png", Response(THUMB_PNG, content_type="image/png"))
    tls.add("/article/2023/0102/bb02.png", Response(FULL_PNG, content_type="image/png"))
    tls.add("/article/2023/0102/bb03.webp", Response(WEBP, content_type="image/webp"))
    connect = [
        f"zkres1.myzaker.com:80:127.0.0.1:{http.port}",
        f"zkres2.myzaker.com:80:127.0.0.1:{http.port}",
        f"cors.zfour.workers.dev:443:127.0.0.1:{tls.port}",
        f"static.cnbetacdn.com:443:127.0.0.1:{tls.port}",
    ]
    args = [arg for rule in connect for arg in ("--connect-to", rule)]
    args += ["--allow-private", "127.0.0.0/8"]
    env = {"ARCHIVER_FETCH__CA_BUNDLE": tls_origin.ca_bundle, "ARCHIVER_FETCH__RETRIES": "1",
           "ARCHIVER_FETCH__BACKOFF_BASE": "0.01"}
    return Site(http, tls, env, args)


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "archive")
        return
    endpoint = request.getfixturevalue("aws_env")
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    os.environ["ARCHIVER_S3_ENDPOINT_URL"] = endpoint
    with open_store(StoreSettings(url=f"s3://{bucket}/arch", endpoint_url=endpoint)) as store:
        store.ensure_bucket()  # type: ignore[attr-defined]
    yield f"s3://{bucket}/arch"


def _open(url: str) -> Store:
    return open_store(StoreSettings(url=url,
                                    endpoint_url=os.environ.get("ARCHIVER_S3_ENDPOINT_URL")))


def _archive(site: Site, store: str, *extra: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(
        cli, ["archive", str(ARTICLES), "--store", store, "--format", "jsonl", *site.args, *extra],
        env={**site.env, **({k: v for k, v in os.environ.items() if k.startswith("ARCHIVER_S3")})},
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.output


def _hits(site: Site) -> int:
    return sum(site.http.hits.values()) + sum(site.tls.hits.values())


def test_archive_end_to_end_then_rerun_is_free(site: Site, store_url: str) -> None:
    code, records, output = _archive(site, store_url)
    assert code == 0, output
    by_origin = {r["origin"]: r for r in records}
    assert set(by_origin) == set(EXPECTED), output
    store = _open(store_url)
    for origin, body in EXPECTED.items():
        record = by_origin[origin]
        assert record["status"] == "archived", record
        assert record["sha256"] == hashlib.sha256(body).hexdigest()
        key = str(record["key"])
        assert key == f"media/{record['sha256'][:2]}/{record['sha256']}.{key.rsplit('.', 1)[1]}"
        assert store.get_bytes(key) == body  # the bytes in storage are the origin's
    gif = by_origin["http://zkres2.myzaker.com/202301/aa02_raw.gif"]
    assert gif["kind"] == "gif" and gif["content_type"] == "image/gif" and gif["frames"] == 3
    assert "http://zkres2.myzaker.com/202301/aa02_1024.jpg" in gif["alternates"]
    assert site.http.hits["/202301/aa02_1024.jpg"] == 0  # the still is not fetched
    # The thumbnail linked to its full image is the full image's alternate, not fetched.
    full = by_origin["https://static.cnbetacdn.com/article/2023/0102/bb02.png"]
    assert full["alternates"] == ["https://static.cnbetacdn.com/thumb/article/2023/0102/bb02.png"]
    assert site.tls.hits["/thumb/article/2023/0102/bb02.png"] == 0
    proxied = by_origin["http://zkres2.myzaker.com/202301/aa03_1024.jpg"]
    assert proxied["route"] == "proxy"
    assert [a["route"] for a in proxied["attempts"]][:1] == ["direct"]
    shared = by_origin["http://zkres1.myzaker.com/202301/aa01_1024.jpg"]
    assert {c["article"] for c in shared["citations"]} == {"zaker-1001", "cnbeta-2002"}
    assert site.http.hits["/202301/aa01_1024.jpg"] == 1  # one fetch for two articles

    manifest = Manifest(store)
    assert store.exists("manifest/index.jsonl")
    article = json.loads(store.get_bytes("manifest/articles/zaker-1001.json"))
    assert "aa01_1024.jpg" in json.dumps(article)

    before = _hits(site)
    code, records, output = _archive(site, store_url)
    assert code == 0, output
    assert _hits(site) == before, "a second run must not request anything"
    assert all(r.get("unchanged") for r in records)
    assert set(manifest.statuses().values()) == {"archived"}


def test_failures_are_recorded_and_exit_nonzero(site: Site, tmp_path: Path) -> None:
    site.tls.proxy_dead = True
    site.http.add("/202301/aa02_raw.gif",
                  Response(media.HTML_ERROR_PAGE, content_type="image/gif"))
    code, records, output = _archive(site, str(tmp_path / "a"))
    assert code == 1, output
    by_origin = {r["origin"]: r for r in records}
    assert by_origin["http://zkres2.myzaker.com/202301/aa03_1024.jpg"]["status"] == "failed"
    assert by_origin["http://zkres2.myzaker.com/202301/aa02_raw.gif"]["error"]["code"] \
        in ("not-media", "http-502")
    assert by_origin["http://zkres1.myzaker.com/202301/aa01_1024.jpg"]["status"] == "archived"
    # The failed ones are retried on the next run, and succeed once the proxy is back.
    site.tls.proxy_dead = False
    site.http.add("/202301/aa02_raw.gif", Response(GIF, content_type="image/gif"))
    code, records, output = _archive(site, str(tmp_path / "a"))
    assert code == 0, output
    fetched = [r for r in records if not r.get("unchanged")]
    assert {r["origin"] for r in fetched} == {
        "http://zkres2.myzaker.com/202301/aa03_1024.jpg",
        "http://zkres2.myzaker.com/202301/aa02_raw.gif",
    }


def test_verify_detects_corruption(site: Site, tmp_path: Path) -> None:
    store = str(tmp_path / "a")
    code, records, output = _archive(site, store)
    assert code == 0, output
    ok = CliRunner().invoke(cli, ["verify", "--store", store])
    assert ok.exit_code == 0, ok.output
    assert "6 ok" in ok.output
    victim = next(r for r in records if r["origin"].endswith("bb03.webp"))
    path = tmp_path / "a" / str(victim["key"])
    os.chmod(path, 0o644)
    path.write_bytes(b"rotten")
    bad = CliRunner().invoke(cli, ["verify", "--store", store, "--format", "jsonl"])
    assert bad.exit_code == 1
    problems = [json.loads(x) for x in bad.stdout.splitlines() if x.startswith("{")]
    assert [p["problem"] for p in problems] == ["mismatch"]


def test_killed_run_resumes_without_duplicates(site: Site, tmp_path: Path) -> None:
    """SIGKILL a real `archiver archive` process part way, run again: everything archived once,
    no partial or duplicate object in the store."""
    slow = 0.4
    for server in (site.http, site.tls):
        for key, value in list(server.routes.items()):
            assert isinstance(value, Response)
            value.delay = slow
            server.routes[key] = value
    store = tmp_path / "archive"
    cmd = [sys.executable, "-m", "archiver", "archive", str(ARTICLES), "--store", str(store),
           "--concurrency", "1", "--format", "jsonl", *site.args]
    env = {**os.environ, **site.env}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(_records_written(store)) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial = len(_records_written(store))  # records reported durable (in segments)
    assert 2 <= partial < len(EXPECTED)

    for server in (site.http, site.tls):
        for value in server.routes.values():
            assert isinstance(value, Response)
            value.delay = 0
    # The process ends without collecting what is left (cli.main freezes it): its temporary
    # files are gone all the same, and its output is whole.
    temp = tmp_path / "temp"
    temp.mkdir()
    done = subprocess.run(cmd, env={**env, "TMPDIR": str(temp)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert list(temp.iterdir()) == []
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert sum(1 for r in lines if r.get("unchanged")) == partial
    media_files = sorted(p for p in (store / "media").rglob("*") if p.is_file())
    names = [p.name for p in media_files]
    assert len(names) == len(set(names)) == len(EXPECTED)
    for path in media_files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name.split(".")[0]
    # No temporary or partial file anywhere: only objects, records and their metadata sidecars.
    stray = [p for p in store.rglob("*") if p.is_file() and not (
        p.is_relative_to(store / "media") or p.is_relative_to(store / "manifest")
        or p.is_relative_to(store / ".meta"))]
    assert stray == []
    assert not [p for p in store.rglob(".*") if p.is_file()]
    shutil.rmtree(store)


def _records_written(store: Path) -> set[str]:
    """Asset ids with a record in a segment of ``store``'s manifest."""
    ids: set[str] = set()
    for segment in (store / "manifest" / "segments").glob("*.jsonl"):
        for line in segment.read_text(encoding="utf-8").splitlines():
            ids.add(Record.from_dict(json.loads(line)).id)
    return ids


def test_table_output_names_each_failure(site: Site, tmp_path: Path) -> None:
    site.tls.proxy_dead = True  # aa03 is gone from its origin and now from the proxy
    result = CliRunner().invoke(
        cli, ["archive", str(ARTICLES), "--store", str(tmp_path / "a"), "--no-progress",
              *site.args], env=site.env)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    # The origin's own 404 is the headline, not the dead proxy's 502.
    assert any(line.split()[:2] == ["failed", "http-404"] and "aa03_1024.jpg" in line
               and line.endswith("(HTTP 404)")
               for line in lines), result.stdout
    assert lines[-1].startswith("archived 5, failed 1, skipped 0, already archived 0")
