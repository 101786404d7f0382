"""What the terminal says about failures: every failed asset with its code and reason (grouped
when they share one), and a progress line now and then when stderr is not a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import progress
from archiver.cli.app import load_commands
from archiver.cli.failures import failure_lines
from tests.support import media
from tests.support.origin import OriginServer, Response

cli = load_commands()
DEAD = "archiver-test.invalid"  # RFC 6761: never resolves


def test_offline_every_failed_asset_is_printed_with_its_reason(tmp_path: Path) -> None:
    """The README's first command with no network: each asset and why, not a bare code."""
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a.md").write_text(
        f"![x](https://upload.{DEAD}/a.png)\n![y](https://upload.{DEAD}/b.gif)\n"
        f"![z](https://upload.{DEAD}/c.jpg)\n![w](https://other.{DEAD}/d.jpg)\n",
        encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "archiver", "archive", str(posts), "--store",
                          str(tmp_path / "archive")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == (f"failed   dns              3 assets: cannot resolve upload.{DEAD}: Name "
                        "or service not known")
    assert [line.strip() for line in lines[1:4]] == [
        f"https://upload.{DEAD}/a.png", f"https://upload.{DEAD}/b.gif",
        f"https://upload.{DEAD}/c.jpg"]
    assert lines[4] == (f"failed   dns              https://other.{DEAD}/d.jpg (cannot resolve "
                        f"other.{DEAD}: Name or service not known)")
    assert lines[5].startswith("archived 0, failed 4, skipped 0")


def test_jsonl_carries_code_and_reason(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(f"![x](https://h.{DEAD}/a.png)\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["archive", str(tmp_path / "a.md"), "--store",
                                      str(tmp_path / "archive"), "--format", "jsonl"])
    record = json.loads(result.stdout.splitlines()[0])
    assert record["error"]["code"] == "dns"
    assert record["error"]["message"] == f"cannot resolve h.{DEAD}: Name or service not known"


def test_failure_lines_name_at_most_the_limit() -> None:
    outcomes = [("failed", f"http://a/{n}.jpg", {"code": "http-404", "message": "HTTP 404"})
                for n in range(7)]
    outcomes.append(("skipped", "http://b/v", {"code": "unsupported", "message": "no fetcher"}))
    lines = failure_lines(outcomes, limit=4)
    assert lines[0] == "failed   http-404         7 assets: HTTP 404"
    assert len(lines) == 6 and lines[-1] == "... and 4 more (--format jsonl lists all)"


def test_without_a_terminal_a_progress_line_now_and_then(origin: OriginServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "INTERVAL", 0.05)
    for n in range(4):
        origin.add(f"/{n}.jpg", Response(media.jpeg(), content_type="image/jpeg", delay=0.3))
    (tmp_path / "a.md").write_text(
        "".join(f"![x](http://zkres1.myzaker.com/{n}.jpg)\n" for n in range(4)), encoding="utf-8")
    result = CliRunner().invoke(cli, [
        "archive", str(tmp_path / "a.md"), "--store", str(tmp_path / "archive"), "-j", "1",
        "--allow-private", "127.0.0.0/8",
        "--connect-to", f"zkres1.myzaker.com:80:127.0.0.1:{origin.port}"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("archiver: ")]
    assert lines and all(" assets done (" in line for line in lines), result.stderr
    assert lines[0].split()[1].endswith("/4")


def test_status_without_redis_shows_the_manifest_and_says_the_queue_is_unreachable(
        tmp_path: Path) -> None:
    from tests.support.services import free_port

    (tmp_path / "a.md").write_text(f"![x](https://h.{DEAD}/a.png)\n", encoding="utf-8")
    store = str(tmp_path / "archive")
    assert CliRunner().invoke(cli, ["archive", str(tmp_path / "a.md"), "--store", store]
                              ).exit_code == 1
    env = {"ARCHIVER_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = CliRunner().invoke(cli, ["status", "--store", store], env=env)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("queue           unreachable: redis: ConnectionError")
    assert lines[1] == "manifest        0 archived, 1 failed, 0 skipped"
    assert lines[2] == (f"failed   dns              https://h.{DEAD}/a.png (cannot resolve "
                        f"h.{DEAD}: Name or service not known)")
    result = CliRunner().invoke(cli, ["status", "--store", store, "--format", "jsonl"], env=env)
    snap, failure = (json.loads(line) for line in result.stdout.splitlines())
    assert snap["queue"] == "unreachable" and snap["manifest"]["failed"] == 1
    assert (failure["code"], failure["origin"]) == ("dns", f"https://h.{DEAD}/a.png")


def test_workers_progress_line_without_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``enqueue --wait`` feeds the batch's counts; the line says where the workers are."""
    monkeypatch.setattr(progress, "INTERVAL", 0.01)
    seen = ""
    with progress.progress_counts(10) as update:
        update(Counter({"archived": 3, "failed": 1}))
        deadline = time.monotonic() + 30  # a generous bound on a poll, not a timed assertion
        while "4/10" not in seen and time.monotonic() < deadline:
            time.sleep(0.02)
            seen += capsys.readouterr().err
    assert "archiver: 4/10 assets done (1 failed, 0 skipped), " in seen


def test_archive_help_states_the_concurrency_defaults_the_settings_have() -> None:
    """``archiver archive --help`` said the default was 8 while the settings said 32."""
    from archiver.settings import FetchSettings, RunnerSettings

    # the sections' own defaults, whatever ARCHIVER_* variables the environment has
    text = " ".join(CliRunner().invoke(cli, ["archive", "--help"]).output.split())
    assert (f"runner.concurrency in the settings, {RunnerSettings().concurrency} unless "
            "configured") in text
    assert f"fetch.per_host_concurrency, {FetchSettings().per_host_concurrency})" in text
