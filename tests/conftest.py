"""Session-wide real servers and a clean environment for every test."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.origin import OriginServer
from tests.support.services import moto_s3, redis_server
from tests.support.vqq import VQQ_HOSTS

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch,
               tmp_path_factory: pytest.TempPathFactory) -> None:
    """No ARCHIVER_* or proxy variable from the developer's shell leaks into a test, and no
    test reaches the real Wayback Machine: settings read from the environment (the CLI, the
    workers) have the wayback route off unless a test turns it on with a local endpoint. Each
    test has a scan cache of its own ($XDG_CACHE_HOME), never the developer's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    for name in list(os.environ):
        if name.startswith("ARCHIVER_") or name.lower() in (
            "http_proxy", "https_proxy", "all_proxy", "no_proxy"
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCHIVER_WAYBACK__ENABLED", "false")


@pytest.fixture(scope="session")
def origin_server() -> Iterator[OriginServer]:
    server = OriginServer().start()
    yield server
    server.stop()


@pytest.fixture
def origin(origin_server: OriginServer) -> Iterator[OriginServer]:
    """The session's origin server with its routes and counters cleared for this test."""
    origin_server.reset()
    yield origin_server
    origin_server.reset()


@dataclass(frozen=True)
class TLSOrigin:
    """An HTTPS origin whose certificate (for every name tests use) a test CA signs."""

    server: OriginServer
    ca_bundle: str


@pytest.fixture(scope="session")
def tls_origin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSOrigin]:
    ca = trustme.CA()
    cert = ca.issue_cert("cors.zfour.workers.dev", "*.workers.dev", "*.myzaker.com",
                         "static.cnbetacdn.com", "*.test", "localhost", "127.0.0.1",
                         "web.archive.org", "wayback.test", "*.jianshu.io", *VQQ_HOSTS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    bundle = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = OriginServer(ssl_context=context).start()
    yield TLSOrigin(server, str(bundle))
    server.stop()


@pytest.fixture
def tls_origin(tls_origin_server: TLSOrigin) -> Iterator[TLSOrigin]:
    """The session's HTTPS origin, cleared for this test."""
    tls_origin_server.server.reset()
    yield tls_origin_server
    tls_origin_server.server.reset()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> str:
    """Dummy credentials for moto through boto3's usual chain; returns the endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def posts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real corpus when it is beside the checkout, else posts generated in its format (the
    benchmark's generator), so the end-to-end tests that need many real-shaped posts run in
    every checkout instead of skipping."""
    if CORPUS.is_dir():
        return CORPUS
    from bench.corpus import generate

    out = tmp_path_factory.mktemp("posts")
    generate(60, 3, out)
    return out


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"real corpus not present at {CORPUS}")
    return CORPUS

