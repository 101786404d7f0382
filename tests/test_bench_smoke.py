"""The benchmark harness runs end to end on a handful of assets (figures are not checked:
CI does not benchmark; this proves the origin, the measured child processes, the moto service,
the baseline and the report all work together)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.archive import DUMMY_AWS
from bench.origin import LocalInternet, Options, body_bytes, body_for
from bench.run import run_profile


def test_origin_serves_deterministic_unique_media() -> None:
    jpg = body_bytes("zkres1.myzaker.com", "/202201/abc_1024.jpg")
    assert jpg.startswith(b"\xff\xd8\xff")
    assert jpg == body_bytes("zkres1.myzaker.com", "/202201/abc_1024.jpg")
    assert jpg != body_bytes("zkres2.myzaker.com", "/202201/abc_1024.jpg")
    assert body_bytes("h", "/a.gif")[:6] == b"GIF89a"
    assert body_bytes("h", "/v-100000b.mp4")[4:8] == b"ftyp"
    assert len(body_bytes("h", "/v-100000b.mp4")) == 100_000
    assert body_for("h", "/missing/a.jpg") is None


def test_smoke_profile_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DUMMY_AWS.items():  # s3_service sets these; monkeypatch restores them
        monkeypatch.setenv(name, value)
    res = run_profile("smoke", tmp_path)

    kinds = {row["kind"] for row in res.rows}
    assert {"scan", "scan baseline", "archiver", "incremental", "baseline"} <= kinds
    assets = res.workload["assets"]
    assert assets > 0
    runs = [row for row in res.rows if row["kind"] == "archiver"]
    assert {(row["store"], row["concurrency"]) for row in runs} == {
        ("folder", 1), ("folder", 4), ("s3", 1), ("s3", 4)}
    for row in runs:
        assert row["items"] == assets and row["failed"] == 0, row
        assert row["bytes"] > 0 and row["peak_rss_mb"] > 0
        assert row["origin_requests"] >= assets
    rerun = next(row for row in res.rows if row["kind"] == "incremental")
    assert rerun["todo"] == 0 and rerun["origin_requests"] == 0
    for row in (r for r in res.rows if r["kind"] == "baseline"):
        assert row["items"] == assets and row["failed"] == 0, row

    text = (tmp_path / "RESULTS.md").read_text()
    assert "| archiver -j4 -> s3 | s3 |" in text and "## Targets" in text
    assert (tmp_path / "throughput.png").read_bytes().startswith(b"\x89PNG")


def test_forward_proxy_and_cors_proxy_serve_the_same_bytes() -> None:
    import httpx

    with LocalInternet(Options(latency=0.0), workers=1) as net:
        path = "/news/2022/01/x.jpg!custom"
        with httpx.Client(proxy=net.proxy_url) as client:
            direct = client.get(f"http://img.jandan.net{path}")
        proxied = httpx.get(f"{net.proxy_url}/?http://img.jandan.net{path}")
        assert direct.status_code == proxied.status_code == 200
        assert direct.content == proxied.content == body_bytes("img.jandan.net", path)
        assert net.stats()["proxy_requests"] == 1
        assert net.stats()["requests"] == 2


def test_s3_server_counts_requests_by_what_the_key_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from bench.archive import s3_service
    from bench.s3server import requests_seen

    for name, value in DUMMY_AWS.items():
        monkeypatch.setenv(name, value)
    with s3_service() as endpoint:
        requests_seen(endpoint, reset=True)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.put_object(Bucket="bench", Key="run/media/ab/abc.jpg", Body=b"x")
        s3.put_object(Bucket="bench", Key="run/manifest/assets/a.json", Body=b"{}")
        s3.list_objects_v2(Bucket="bench", Prefix="run/")
        seen = requests_seen(endpoint)
    assert seen == {"PUT media": 1, "PUT records": 1, "GET list": 1}


def test_report_sections_are_replaced_in_place(tmp_path: Path) -> None:
    from bench.report import kept_sections, put_section

    md = tmp_path / "RESULTS.md"
    md.write_text("# head\n\ntext\n")
    put_section(md, "compare", ["one"])
    put_section(md, "profile", ["two"])
    put_section(md, "compare", ["three", ""])
    assert md.read_text() == ("# head\n\ntext\n\n<!-- compare -->\nthree\n<!-- /compare -->\n\n"
                              "<!-- profile -->\ntwo\n<!-- /profile -->\n")
    assert len(kept_sections(md)) == 2


def test_the_cli_row_counts_what_the_cli_archived_then_found_archived(tmp_path: Path) -> None:
    """bench.compare's archiver rows run ``archiver archive`` as a user types it; the row's
    items come from the CLI's summary line (new assets, then the unchanged ones on a re-run)."""
    from bench.archive import run_archiver_cli
    from bench.workload import asset_urls, make_articles

    paths = make_articles(3, 7, tmp_path / "articles")
    assets = len(asset_urls(paths))
    store = str(tmp_path / "store")
    with LocalInternet(Options(latency=0.0), workers=1) as net:
        cache = tmp_path / "cache"
        first = run_archiver_cli("cli", paths, store, net, 4, cache_dir=cache)
        again = run_archiver_cli("cli again", paths, store, net, 4, cache_dir=cache)
    assert assets > 0
    assert (first.items, first.extra["failed"], first.extra["todo"]) == (assets, 0, assets)
    assert (again.items, again.extra["failed"], again.extra["todo"]) == (assets, 0, 0)
    assert first.wall > 0 and first.cpu > 0 and first.peak_rss > 0
    assert len(list((tmp_path / "store" / "media").rglob("*.*"))) == assets
    assert (cache / "scan-cache.sqlite3").is_file()  # the run's own scan cache, not ~/.cache


def test_rerun_bench_times_the_cli_over_the_archived_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.rerun builds an archived set (records, index, article manifests, a warm scan
    cache of its own), then times ``archiver archive`` over it as a command beside the job
    alone; bench.compare reads the CLI's figure back from the block."""
    from bench.compare import rerun_seconds
    from bench.rerun import main

    for name, value in DUMMY_AWS.items():  # s3_service sets these; monkeypatch restores them
        monkeypatch.setenv(name, value)
    out = tmp_path / "RERUN.md"
    main(["--articles", "4", "--rounds", "1", "--steady", "--work", str(tmp_path / "work"),
          "--out", str(out)])
    text = out.read_text()
    assert "re-run (writes article manifests, fills the scan cache)" in text
    assert "re-run 1, CLI:" in text and "re-run 1, the job alone:" in text
    assert "the job alone in-process (no start-up, no imports)" in text
    seconds = rerun_seconds(out, 4)
    assert seconds is not None and seconds > 0
    assert (tmp_path / "work" / "scan-cache" / "scan-cache.sqlite3").is_file()
