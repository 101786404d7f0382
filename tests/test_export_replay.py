"""Replay: pywb, started on the WACZ export, serves each archived origin URL (``id_`` mode,
the bytes as archived) byte for byte as the store holds it, and each article's page.

pywb lives in its own venv (it pins an old redis client): ``bash scripts/pywb`` makes it and
``.ci/run`` runs this test with ``pytest -m replay``. A missing pywb fails the test.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli.app import load_commands
from tests.support.exported import build_archive
from tests.support.origin import OriginServer
from tests.support.services import free_port, stop, wait_port

pytestmark = pytest.mark.replay
REPO = Path(__file__).resolve().parents[1]
PYWB_BIN = Path(os.environ.get("PYWB_BIN", REPO / ".venv-pywb" / "bin"))


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.status, resp.read()


def test_pywb_replays_every_archived_origin_from_the_wacz(origin: OriginServer,
                                                          tmp_path: Path) -> None:
    wayback, manager = PYWB_BIN / "wayback", PYWB_BIN / "wb-manager"
    if not wayback.exists():
        pytest.fail(f"pywb is not installed at {PYWB_BIN}: run bash scripts/pywb")
    built = build_archive(origin, tmp_path)
    wacz = tmp_path / "export.wacz"
    result = CliRunner().invoke(load_commands(), ["export", "wacz", str(wacz), "--store",
                                                  str(built.store)])
    assert result.exit_code == 0, result.output
    site = tmp_path / "pywb"
    site.mkdir()
    subprocess.run([str(manager), "init", "export"], cwd=site, check=True,
                   capture_output=True)
    subprocess.run([str(manager), "add", "--unpack-wacz", "export", str(wacz)], cwd=site,
                   check=True, capture_output=True)
    port = free_port()
    log = (tmp_path / "wayback.log").open("wb")
    proc = subprocess.Popen([str(wayback), "-b", "127.0.0.1", "-p", str(port)], cwd=site,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=120)
        base = f"http://127.0.0.1:{port}/export"
        for record in built.records.values():
            assert record.key
            status, body = _get(f"{base}/2100id_/{record.origin}")
            assert status == 200, record.origin
            assert body == (built.store / record.key).read_bytes(), record.origin
        status, page = _get(f"{base}/2100id_/https://archiver.invalid/articles/one.html")
        assert status == 200 and b"First &lt;b&gt;post&lt;/b&gt;" in page
    finally:
        stop(proc)
        log.close()
