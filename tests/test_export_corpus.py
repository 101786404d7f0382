"""The real posts (or, without them, posts generated in their format) archived offline, then
exported: every origin is served generated media by local HTTP and HTTPS origins
(``--connect-to`` per host, a test CA for every HTTPS name), never the internet. The WARC passes
``warcio check``; each stored object is one response or resource record whose payload digest
is its sha256, every other URL with those bytes a revisit; the WACZ validates and its index
finds every archived origin."""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.drivers.job import archive_paths
from archiver.export import cdxj
from archiver.manifest import Manifest
from archiver.scan import scan_paths
from archiver.settings import ScanSettings, Settings
from archiver.store.local import LocalStore
from bench.origin import body_bytes, body_for
from tests.support.origin import OriginServer, Response
from tests.support.warcs import read_warc

pytestmark = pytest.mark.corpus


def test_real_corpus_archive_exports_as_checked_warc_and_wacz(posts_dir: Path,
                                                              tmp_path: Path) -> None:
    origins = {ref.origin for scan in scan_paths([str(posts_dir)], ScanSettings())
               for ref in scan.references}
    hosts = {(p.scheme, p.hostname or "", p.port) for p in map(urlsplit, origins)}
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*sorted({host for scheme, host, _ in hosts if scheme == "https"})) \
        .configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    servers = {"http": OriginServer().start(), "https": OriginServer(ssl_context=context).start()}
    try:
        for origin in origins:
            parts = urlsplit(origin)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            body = body_for(parts.hostname or "", path)
            if body is not None and body.size <= 256 * 1024:  # keep the test's memory small
                servers[parts.scheme].add(path, Response(body_bytes(parts.hostname or "", path),
                                                         content_type=body.media_type))
        connect = [f"{host}:{port or (443 if scheme == 'https' else 80)}:127.0.0.1:"
                   f"{servers[scheme].port}" for scheme, host, port in hosts]
        store = tmp_path / "archive"
        settings = Settings.model_validate({
            "fetch": {"allow_private": ["127.0.0.0/8"], "connect_to": connect, "retries": 0,
                      "ca_bundle": str(bundle), "deadline": 60},
            "store": {"url": str(store)}})
        archive_paths([str(posts_dir)], settings)
    finally:
        for server in servers.values():
            server.stop()

    archived = [r for r in Manifest(LocalStore(store)).iter_records() if r.status == "archived"]
    assert len(archived) > 100
    cli = load_commands()
    warc_path, wacz_path = tmp_path / "corpus.warc.gz", tmp_path / "corpus.wacz"
    for kind, path in (("warc", warc_path), ("wacz", wacz_path)):
        result = CliRunner().invoke(cli, ["export", kind, str(path), "--store", str(store)])
        assert result.exit_code == 0, result.output

    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", str(warc_path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    warc = read_warc(warc_path)  # digests verified again, record by record
    payloads = Counter(r.one("WARC-Payload-Digest") for r in warc.of_type("response",
                                                                           "resource"))
    stored = {f"sha256:{r.sha256}" for r in archived}
    assert set(payloads) == stored and set(payloads.values()) == {1}  # each object once
    for rec in warc.of_type("response", "resource"):
        digest = rec.one("WARC-Payload-Digest")
        assert digest == "sha256:" + hashlib.sha256(rec.payload).hexdigest()
    holders = {r.one("WARC-Archiver-Origin") for r in warc.of_type("response", "resource")}
    revisited = {r.one("WARC-Archiver-Origin") for r in warc.of_type("revisit")}
    assert {r.origin for r in archived} <= holders | revisited

    check = subprocess.run([sys.executable, "-m", "wacz", "validate", "-f", str(wacz_path)],
                           capture_output=True, text=True)
    assert "Validation succeeded" in check.stdout, check.stdout + check.stderr
    with zipfile.ZipFile(wacz_path) as z:
        index = z.read("indexes/index.cdx").decode().splitlines()
        pages = z.read("pages/pages.jsonl").splitlines()
    found: dict[str, set[str]] = {}
    for line in index:
        key, _, rest = line.split(" ", 2)
        found.setdefault(key, set()).add(json.loads(rest)["digest"])
    for record in archived:  # the index finds every archived origin, with its bytes' digest
        assert f"sha256:{record.sha256}" in found.get(cdxj.key(record.origin), set()), \
            record.origin
    assert len(pages) > 50  # a page for (nearly) every post
    types = Counter(r.type for r in warc.records)
    print(f"\nreal corpus export: {len(archived)} archived assets, {len(stored)} objects, "
          f"WARC records {dict(types)}, {len(index)} index lines, {len(pages) - 1} pages")
