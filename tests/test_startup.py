"""What ``archiver archive`` into a folder loads: only what that path uses. Start-up is paid by
every run, so the S3 client, the fleet's queue, yt-dlp, the other commands' code and httpx's
command-line client stay out of a folder run, and so does the scanner when the scan cache
holds every article; nor is the TLS context made before an https URL needs it; planning a new
archive costs a few requests, not a listing per hex digit. (What a fresh interpreter loaded,
made and asked for, not a timing.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import FetchError
from archiver.fetch.http import HttpFetcher
from archiver.manifest import Manifest
from archiver.models import Asset, Record
from archiver.settings import Settings
from tests.conftest import TLSOrigin
from tests.support import media
from tests.support.origin import OriginServer, Response
from tests.support.services import counting_moto_s3
from tests.support.stores import new_s3_store

RUN = """
import json, sys
from archiver.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as fh:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, fh)
"""
# Never loaded by a folder run: S3, the fleet (Celery, Redis), video pages, the other
# commands, and what only httpx's own command line uses.
NEVER = ("boto3", "botocore", "s3transfer", "celery", "kombu", "redis", "yt_dlp", "rich",
         "pygments", "archiver.store.s3", "archiver.drivers.coordination",
         "archiver.drivers.enqueue", "archiver.rewrite", "archiver.verify", "archiver.export",
         "archiver.report", "archiver.cli.scan", "archiver.cli.queue", "archiver.cli.worker",
         "archiver.cli.rewrite", "archiver.cli.export", "archiver.cli.config",
         "archiver.cli.report")
SCANNER = ("bs4", "soupsieve", "yaml", "lxml", "archiver.scan.core", "archiver.scan.html")
# Loaded only by what needs them: httpx and httpcore by the httpx path (an egress proxy,
# fetch.lean_http off, the Wayback Machine, a redirect or an unusual URL), Pillow by an image
# that the header readers of fetch/facts.py leave to it (a PNG, a GIF, an unusual JPEG).
HTTPX = ("httpx", "httpcore", "h11", "h2", "socksio", "anyio", "sniffio")
PILLOW = ("PIL",)
# Loaded by a run that forks: runner children (runner.processes), a scan of hundreds of files.
FORKING = ("multiprocessing", "concurrent.futures.process")
STUB = "httpx._main"  # fetch/__init__.py's stand-in for httpx's command line, not httpx


def archive(tmp_path: Path, origin: OriginServer, store: str) -> tuple[int, set[str]]:
    out = tmp_path / f"{store}.json"
    subprocess.run([sys.executable, "-c", RUN, str(out), "archive", str(tmp_path / "posts"),
                    "--store", str(tmp_path / store), "--no-progress",
                    "--allow-private", "127.0.0.0/8",
                    "--connect-to", f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}"],
                   cwd=tmp_path, capture_output=True, timeout=120, check=True)
    seen: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return int(seen["exit"] or 0), {m for m in seen["modules"] if not m.startswith("_")}


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages included: ``boto3`` covers ``boto3.session``) loaded."""
    return sorted(m for m in modules - {STUB} for name in names
                  if m == name or m.startswith(name + "."))


def test_a_folder_run_loads_only_what_it_uses(origin: OriginServer, tmp_path: Path) -> None:
    origin.add("/a.jpg", Response(media.jpeg(), content_type="image/jpeg"))
    origin.add("/b.png", Response(media.png(), content_type="image/png"))
    (tmp_path / "posts").mkdir()
    (tmp_path / "posts" / "a.md").write_text(
        "![a](http://zkres1.myzaker.com/a.jpg)\n", encoding="utf-8")

    code, first = archive(tmp_path, origin, "one")
    assert code == 0
    assert len(list((tmp_path / "one").rglob("*.jpg"))) == 1  # it did fetch and store
    assert loaded(first, NEVER + HTTPX + PILLOW + FORKING) == []
    assert "archiver.fetch.http" in first and "lxml" in first  # the article was parsed
    assert loaded(first, ("bs4", "soupsieve")) == []  # only for snippets lxml's target refuses

    # A PNG too, into another store: Pillow reads its facts; the JPEG's article comes from
    # the scan cache, the new one is parsed.
    (tmp_path / "posts" / "b.md").write_text(
        "<p><img src=\"http://zkres1.myzaker.com/b.png\"></p>\n", encoding="utf-8")
    code, second = archive(tmp_path, origin, "two")
    assert code == 0
    assert len(list((tmp_path / "two").rglob("*.png"))) == 1
    assert "archiver.fetch.http" in second and "PIL" in second
    assert loaded(second, NEVER + HTTPX) == []

    # Both again into a third store: the scan cache answers, the assets are fetched.
    code, third = archive(tmp_path, origin, "three")
    assert code == 0
    assert len(list((tmp_path / "three").rglob("*.png"))) == 1
    assert loaded(third, NEVER + SCANNER + HTTPX) == []


def test_the_command_line_looks_for_no_pydantic_plugins() -> None:
    """The settings' models are built without pydantic's plugin search (every installed
    distribution's metadata read), unless the operator's environment says otherwise."""
    code = ("import os, archiver.cli, archiver.settings\n"
            "print(repr(os.environ.get('PYDANTIC_DISABLE_PLUGINS')))")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    for preset, seen in ((None, "'__all__'"), ("", "''"), ("some-plugin", "'some-plugin'")):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=False,
                             env=env if preset is None else {**env,
                                                             "PYDANTIC_DISABLE_PLUGINS": preset})
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == seen


def test_httpx_command_line_still_runs_after_archiver_loaded() -> None:
    """httpx's ``main`` (kept out of archiver's start-up) still is httpx's command."""
    run = subprocess.run([sys.executable, "-c", "import archiver.fetch.http, httpx, sys\n"
                          "assert 'rich' not in sys.modules\nhttpx.main(['--help'])"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "Usage: httpx" in run.stdout


def test_the_tls_context_is_made_at_the_first_https_connection(
        origin: OriginServer, tls_origin: TLSOrigin) -> None:
    """Loading the CA bundle is skipped by a run of http URLs; an https URL still verifies."""
    origin.add("/a.jpg", Response(media.jpeg(), content_type="image/jpeg"))
    tls_origin.server.add("/b.jpg", Response(media.jpeg(), content_type="image/jpeg"))
    settings = Settings.model_validate({"fetch": {
        "allow_private": ["127.0.0.0/8"], "retries": 0,
        "connect_to": [f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}",
                       f"cdn.myzaker.com:443:127.0.0.1:{tls_origin.server.port}"]},
        "wayback": {"enabled": False}})
    fetcher = HttpFetcher(settings, sleep=lambda s: None)
    try:
        fetcher.fetch(Asset("http://zkres1.myzaker.com/a.jpg", "image"), []).close()
        assert not fetcher.pool.tls.loaded
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):  # certifi's roots
            fetcher.fetch(Asset("https://cdn.myzaker.com/b.jpg", "image"), [])
        assert fetcher.pool.tls.loaded
    finally:
        fetcher.close()
    # A configured bundle is read at once: one that cannot be read fails the start.
    with pytest.raises(OSError):
        HttpFetcher(settings.with_overrides(fetch={"ca_bundle": str(tls_origin.ca_bundle)
                                                   + ".missing"}))
    fetcher = HttpFetcher(settings.with_overrides(fetch={"ca_bundle": tls_origin.ca_bundle}))
    try:
        assert fetcher.pool.tls.loaded
        fetcher.fetch(Asset("https://cdn.myzaker.com/b.jpg", "image"), []).close()
    finally:
        fetcher.close()


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[str, Any]]:
    with counting_moto_s3() as (endpoint, app):
        yield endpoint, app


def test_planning_a_new_archive_lists_its_records_in_one_request(
        counted: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an index the records are listed: one LIST while they fit in a page, one per
    leading hex digit at once beyond (counted at the S3 server), and every record is seen."""
    endpoint, app = counted
    for name, value in (("AWS_ACCESS_KEY_ID", "t"), ("AWS_SECRET_ACCESS_KEY", "t"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    store = new_s3_store(endpoint)
    try:
        app.counts.clear()
        assert len(Manifest(store).summaries()) == 0
        assert app.counts["GET list"] == 3  # change markers, segments, records: one each
        records = [Record(origin=f"http://zkres1.myzaker.com/{n}.jpg", kind="image",
                          status="failed", error={"code": "http-404", "message": "gone"})
                   for n in range(12)]
        for record in records:
            Manifest(store).save(record)
        monkeypatch.setattr(store, "page_size", 5)  # more records than a page
        app.counts.clear()
        rows = Manifest(store).summaries()
        assert sorted(rows) == sorted(r.id for r in records)
        assert app.counts["GET list"] >= 2 + 1 + 16  # the first page, then 16 at once
    finally:
        store.close()


def test_an_s3_store_opens_on_botocore_alone(counted: tuple[str, Any]) -> None:
    """boto3's session (resources, the transfer manager) is not loaded: the client is
    botocore's, and it plans, writes and reads."""
    endpoint, _ = counted
    code = ("import sys\nfrom archiver.settings import StoreSettings\n"
            "from archiver.store.s3 import S3Store\nfrom archiver.manifest import Manifest\n"
            "store = S3Store(sys.argv[1], StoreSettings(endpoint_url=sys.argv[2], "
            "region='us-east-1', addressing_style='path'))\nstore.ensure_bucket()\n"
            "assert len(Manifest(store).summaries()) == 0\n"
            "assert store.put_bytes('manifest/x.json', b'{}', 'application/json')\n"
            "assert store.get_bytes('manifest/x.json') == b'{}'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('boto3', 's3transfer')))")
    run = subprocess.run([sys.executable, "-c", code, "s3://startup-botocore/a", endpoint],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "AWS_ACCESS_KEY_ID": "t",
                              "AWS_SECRET_ACCESS_KEY": "t"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
