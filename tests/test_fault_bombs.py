"""Hostile compressed responses and images: bounded memory, a clear error, nothing crashes.

Peak memory is measured in a separate process (``tests.support.memory_probe``) that archives
the hostile assets all at once through the real pipeline; the origin serving them runs here.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from archiver.errors import BadEncoding, Truncated
from archiver.fetch.decode import STEP, decode, parse_encodings
from archiver.models import Asset
from archiver.pipeline import archive_asset, build_context
from archiver.settings import Settings
from archiver.store import open_store
from tests.support import hostile, media
from tests.support.origin import OriginServer, Response
from tests.support.workers import ROOT

pytestmark = pytest.mark.faults

ZAKER = "http://zkres1.myzaker.com"
PEAK_RSS_MB = 150


def _settings(origin: OriginServer) -> dict[str, object]:
    return {"fetch": {"allow_private": ["127.0.0.0/8"], "retries": 0,
                      "connect_to": [f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}"]}}


def test_eight_stacked_bombs_and_a_gigabyte_gzip_stay_under_150_mb(
        origin: OriginServer, tmp_path: Path) -> None:
    origin.add("/single.jpg", hostile.single_gzip_bomb())
    assets = [[f"{ZAKER}/single.jpg", "image"]]
    for i in range(8):
        origin.add(f"/stacked{i}.jpg", hostile.stacked_gzip_bomb())
        assets.append([f"{ZAKER}/stacked{i}.jpg", "image"])
    images = {
        "gif13k.gif": hostile.huge_gif(13000, 13000, frames=200),  # within the pixel cap
        "gif64k.gif": hostile.huge_gif(),
        "png.png": hostile.huge_png(),
        "webp.webp": hostile.huge_webp(),
        "jpeg.jpg": hostile.huge_jpeg(),
    }
    for name, data in images.items():
        origin.add(f"/{name}", hostile.as_image(data))
        assets.append([f"{ZAKER}/{name}", "gif" if name.endswith(".gif") else "image"])
    spec = {"settings": _settings(origin), "store": str(tmp_path / "archive"), "assets": assets}
    proc = subprocess.run([sys.executable, "-m", "tests.support.memory_probe", json.dumps(spec)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    by_name = {r["origin"].rsplit("/", 1)[1]: r for r in out["records"]}
    for i in range(8):
        assert by_name[f"stacked{i}.jpg"]["code"] == "too-large"
    assert by_name["single.jpg"]["code"] == "too-large"
    # The huge images are kept (their bytes are what the article shows), facts from headers.
    assert {by_name[n]["status"] for n in images} == {"archived"}
    assert by_name["gif13k.gif"]["frames"] == 200
    assert (by_name["webp.webp"]["width"], by_name["webp.webp"]["frames"]) == (16384, 3)
    assert out["peak_rss_mb"] < PEAK_RSS_MB, out


def test_three_layers_are_refused_and_nothing_is_stored(origin: OriginServer,
                                                         tmp_path: Path) -> None:
    origin.add("/triple.png", hostile.triple_gzip(media.png()))
    origin.add("/br.png", Response(body=media.png(), headers={"Content-Encoding": "br"}))
    origin.add("/double.png", Response(body=gzip.compress(gzip.compress(media.png())),
                                       headers={"Content-Encoding": "gzip, gzip"}))
    settings = Settings.model_validate({**_settings(origin),
                                        "store": {"url": str(tmp_path / "a")}})
    with open_store(settings.store) as store, build_context(settings, store) as ctx:
        triple = archive_asset(Asset(origin=f"{ZAKER}/triple.png", kind="image"), ctx)
        brotli = archive_asset(Asset(origin=f"{ZAKER}/br.png", kind="image"), ctx)
        double = archive_asset(Asset(origin=f"{ZAKER}/double.png", kind="image"), ctx)
    assert triple.status == "failed" and triple.error is not None
    assert triple.error["code"] == "bad-encoding" and not triple.error["retryable"]
    assert "3 Content-Encoding layers" in triple.error["message"]
    assert brotli.error is not None and brotli.error["code"] == "bad-encoding"
    assert origin.hits["/triple.png"] == 1  # permanent: not retried on the same route
    assert double.status == "archived" and double.size == len(media.png())
    assert not (tmp_path / "a" / "media").exists() or \
        len(list((tmp_path / "a" / "media").rglob("*.*"))) == 1
    # Only what is decoded is advertised.
    sent = {h.get("Accept-Encoding") for _host, path, h in origin.requests}
    assert sent == {"gzip, deflate"}


def test_decoder_steps_are_bounded_and_streams_are_checked() -> None:
    bomb = hostile.stacked_gzip_bomb(64 * 1024 * 1024).body
    pieces = decode([bomb[i:i + 1000] for i in range(0, len(bomb), 1000)], ["gzip", "gzip"])
    total = 0
    for piece in pieces:
        assert len(piece) <= STEP
        total += len(piece)
    assert total == 64 * 1024 * 1024
    # Concatenated gzip members are one body; raw and zlib-wrapped deflate both decode.
    data = media.png()
    assert b"".join(decode([gzip.compress(data[:50]) + gzip.compress(data[50:])],
                           ["gzip"])) == data
    assert b"".join(decode([zlib.compress(data)], ["deflate"])) == data
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert b"".join(decode([raw.compress(data) + raw.flush()], ["deflate"])) == data
    assert parse_encodings(["identity", "x-gzip"]) == ["gzip"]
    with pytest.raises(Truncated):
        list(decode([gzip.compress(data)[:-20]], ["gzip"]))
    with pytest.raises(BadEncoding):
        list(decode([b"\x1f\x8b\x08\x00garbage" * 10], ["gzip"]))
