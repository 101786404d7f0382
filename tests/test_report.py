"""``archiver report``: the real corpus (or posts generated in its format) archived from local
servers playing its hosts (generated media, some assets gone), the report opened from disk in
the system's headless Chromium: the page loads, every thumbnail decodes, the totals match the
manifest and the filter works."""

from __future__ import annotations

import json
import os
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from click.testing import CliRunner
from playwright.sync_api import Browser, sync_playwright

from archiver.cli.app import load_commands
from archiver.manifest import Manifest
from archiver.models import Attempt, Citation, Record
from archiver.report import write_report
from archiver.scan import scan_paths
from archiver.settings import ScanSettings, Settings, StoreSettings
from archiver.store import open_store
from tests.support import media
from tests.support.origin import OriginServer, Response

cli = load_commands()
CHROMIUM = "/usr/bin/chromium"
# The flags this machine's Chromium runs with (Playwright adds --headless and a fresh profile).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
GONE_EVERY = 7  # every 7th origin is missing from its server: failed records with a reason


@dataclass
class Archive:
    store: str
    report: Path
    records: list[Record]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        the_browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_ARGS)
        yield the_browser
        the_browser.close()


@pytest.fixture(scope="module")
def corpus_archive(tmp_path_factory: pytest.TempPathFactory,
                   posts_dir: Path) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp("report")
    scans = scan_paths([str(posts_dir)], ScanSettings())
    origins = sorted({ref.origin: ref.kind for scan in scans for ref in scan.references}.items())
    hosts = sorted({urlsplit(o).hostname or "" for o, _ in origins})
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    bundle = root / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    http, tls = OriginServer().start(), OriginServer(ssl_context=context).start()
    cwd = os.getcwd()
    try:
        for n, (origin, kind) in enumerate(origins):
            if n % GONE_EVERY == GONE_EVERY - 1 or kind == "video":
                continue
            parts = urlsplit(origin)
            server = tls if parts.scheme == "https" else http
            body = (media.gif(24 + n % 9, 18, frames=2) if kind == "gif"
                    else media.jpeg(40 + n % 23, 30, color=(n * 37 % 256, 90, 160)))
            server.add(parts.path + (f"?{parts.query}" if parts.query else ""),
                       Response(body, content_type="image/gif" if kind == "gif" else "image/jpeg"))
        store = "archive"  # relative, as people type it (and as the screenshot shows it)
        os.chdir(root)
        env = {"ARCHIVER_FETCH__CA_BUNDLE": str(bundle), "ARCHIVER_FETCH__RETRIES": "0",
               "ARCHIVER_VIDEO__RETRIES": "0", "ARCHIVER_VIDEO__EXTRACTOR_RETRIES": "0"}
        result = CliRunner().invoke(cli, [
            "archive", str(posts_dir), "--store", store, "--allow-private", "127.0.0.0/8",
            "--connect-to", f":80:127.0.0.1:{http.port}",
            "--connect-to", f":443:127.0.0.1:{tls.port}"], env=env)
        assert result.exit_code == 1, result.output  # the gone ones failed
        report = root / "report.html"
        result = CliRunner().invoke(cli, ["report", str(report), "--store", store, "--format",
                                          "jsonl"])
        assert result.exit_code == 0, result.output
        with open_store(StoreSettings(url=store)) as the_store:
            records = list(Manifest(the_store).iter_records())
        os.chdir(cwd)
        assert json.loads(result.stdout)["assets"] == len(records)
        yield Archive(store, report, records)
    finally:
        os.chdir(cwd)
        http.stop()
        tls.stop()


def open_report(browser: Browser, path: Path) -> Any:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri())
    # Thumbnails are lazy for long reports; load them all and wait for each to settle.
    page.evaluate("""() => Promise.all([...document.images].map(img => {
        img.loading = "eager";
        return img.decode().catch(() => null);
    }))""")
    assert errors == []
    return page


@pytest.mark.corpus
def test_real_corpus_report_renders_with_every_thumbnail(browser: Browser,
                                                         corpus_archive: Archive) -> None:
    statuses = Counter(r.status for r in corpus_archive.records)
    assert statuses["archived"] > 100 and statuses["failed"] > 10
    page = open_report(browser, corpus_archive.report)
    try:
        widths = page.evaluate("() => [...document.images].map(i => [i.src, i.naturalWidth])")
        archived_images = {r.key for r in corpus_archive.records
                           if r.status == "archived" and r.kind != "video"}
        assert {src.rsplit("/", 1)[-1] for src, _ in widths} == \
            {str(k).rsplit("/", 1)[-1] for k in archived_images}
        assert all(width > 0 for _, width in widths), [s for s, w in widths if not w]
        shown = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
            "[data-count]")].map(e => [e.dataset.count, Number(e.textContent)]))""")
        assert shown == {s: statuses[s] for s in ("archived", "failed", "skipped")}
        # Each failure says why, in its row.
        reasons = page.locator("tr[data-status=failed] td:last-child code").all_text_contents()
        assert reasons and all(reasons)
        cited = sum(len({c.article for c in r.citations}) or 1
                    for r in corpus_archive.records if r.status == "failed")
        page.check("input[name=status][value=failed]")
        assert page.locator("section.article tbody tr:visible").count() == cited
        assert page.locator("tr[data-status=archived]:visible").count() == 0
        assert page.inner_text("#shown") == f"{cited} references shown"
        if os.environ.get("REPORT_SCREENSHOT"):  # docs/report.png is made this way
            page.check("input[name=status][value='']")
            page.set_viewport_size({"width": 1100, "height": 760})
            page.screenshot(path=os.environ["REPORT_SCREENSHOT"])
    finally:
        page.close()


def test_hostile_records_are_escaped_and_never_links(browser: Browser, tmp_path: Path) -> None:
    store = open_store(StoreSettings(url=str(tmp_path / "archive")))
    manifest = Manifest(store)
    evil = 'http://x.test/"><script>window.pwned=1</script>.jpg'
    manifest.save(Record(origin=evil, kind="image", status="failed",
                         citations=(Citation("<b>post</b>", ("img[src]",)),),
                         attempts=(Attempt("direct", evil, 404, {"code": "http-404"}),),
                         error={"code": "http-404", "message": "<img src=x onerror=pwned=1>"}))
    manifest.save(Record(origin="javascript:alert(1)", kind="image", status="skipped",
                         error={"code": "unsupported", "message": "scheme"}))
    out = tmp_path / "out" / "report.html"
    stats = write_report(manifest, store, Settings(), out)
    store.close()
    assert stats.statuses == Counter({"failed": 1, "skipped": 1})
    page = open_report(browser, out)
    try:
        assert page.evaluate("() => window.pwned") is None
        assert page.locator("a[href^='javascript']").count() == 0
        assert page.locator("h2", has_text="<b>post</b>").count() == 1
        assert page.locator("text=http-404").count() == 1
    finally:
        page.close()


def test_s3_thumbnails_come_from_the_public_base_url(aws_env: str, tmp_path: Path) -> None:
    settings = Settings().with_overrides(store={
        "url": "s3://report-thumbs/p", "endpoint_url": aws_env,
        "public_base_url": "https://media.example.org/archive"})
    store = open_store(settings.store)
    store.ensure_bucket()  # type: ignore[attr-defined]
    manifest = Manifest(store)
    manifest.save(Record(origin="https://a.test/x.jpg", kind="image", status="archived",
                         key="media/ab/abc.jpg", sha256="abc", size=10,
                         citations=(Citation("post", ("img[src]",)),)))
    out = tmp_path / "r.html"
    write_report(manifest, store, settings, out)
    store.close()
    assert 'src="https://media.example.org/archive/media/ab/abc.jpg"' in out.read_text("utf-8")
