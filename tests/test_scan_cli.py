"""``archiver scan``: click's runner for the formats, one real subprocess for the wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import archiver.cli.scan  # noqa: F401 - registers the command on the group
from archiver.cli.app import cli

ARTICLES = Path(__file__).parent / "fixtures" / "articles"
ROOT = Path(__file__).resolve().parents[1]


def test_jsonl_one_object_per_reference() -> None:
    result = CliRunner().invoke(cli, ["scan", "--format", "jsonl", str(ARTICLES / "zaker-gif.md")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    assert set(rows[0]) == {"article", "where", "kind", "url", "origin", "proxy", "alternates"}
    gif = next(r for r in rows if r["kind"] == "gif")
    assert gif["article"] == "zaker-gif" and gif["where"] == ["img[data-gif-url]"]
    assert gif["alternates"] == [gif["origin"].replace("_raw.gif", "_1024.jpg")]


def test_table_rows_and_totals() -> None:
    result = CliRunner().invoke(cli, ["scan", str(ARTICLES)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if not line.startswith("  ")]
    assert lines[0].startswith("lazy-html\t") and "skipped=7" in lines[0]
    assert len(lines) == 6  # five articles (.txt and .hidden/ left out), then the totals
    skipped = [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(skipped) == 7 and ["skipped", "unsupported-video"] in skipped
    # Two linked thumbnails are their originals' alternates, not references, and so are the
    # four smaller srcset candidates of lazy-html.
    assert lines[-1] == ("total: 5 articles  39 references  image=29  gif=2  video=8  "
                         "skipped=7  warnings=0")


def test_skipped_references_are_listed_with_their_reason() -> None:
    result = CliRunner().invoke(cli, ["scan", "--format", "jsonl",
                                      str(ARTICLES / "lazy-html.html")])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    skipped = [r for r in rows if r.get("status") == "skipped"]
    assert {"article": "lazy-html", "where": ["iframe[src]"], "status": "skipped",
            "reason": "unsupported-video",
            "url": "//tv.sohu.com/s/sohuplayer/iplay.html?bid=123&autoplay=false"} in skipped
    assert {r["reason"] for r in skipped} == {"data-uri", "relative", "unsupported-video",
                                              "javascript", "unsupported-scheme"}


def test_a_directory_without_articles_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no articles here", encoding="utf-8")
    for command in (["scan"], ["archive", "--dry-run", "--store", str(tmp_path / "a")]):
        result = CliRunner().invoke(cli, [*command, str(tmp_path)], prog_name="archiver")
        assert result.exit_code == 2
        assert result.stderr == f"archiver: error: scan: no articles in {tmp_path} (looked for " \
            ".htm, .html, .markdown, .md, hidden files left out)\n"


def test_stdin_and_warnings_on_stderr() -> None:
    post = "---\ntitle: 'a'b'\nheadimg: https://a.example/h.jpg\n---\n![x](https://a.example/y.png)"
    result = CliRunner().invoke(cli, ["scan", "-", "--format", "jsonl"], input=post)
    assert result.exit_code == 0
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(r["article"], r["origin"]) for r in rows] == [
        ("stdin", "https://a.example/h.jpg"), ("stdin", "https://a.example/y.png")]
    assert "warning: -: malformed YAML" in result.stderr


def test_missing_path_exit_code_2() -> None:
    result = CliRunner().invoke(cli, ["scan", str(ARTICLES / "zaker-gif.md"), "no/such.md"])
    assert result.exit_code == 2
    assert "no such file or directory: no/such.md" in result.stderr
    assert result.stdout == ""


def test_real_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "archiver", "scan", "--format", "jsonl",
         str(ARTICLES / "markdown.md")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 7  # the linked thumbnail is an alternate
    missing = subprocess.run(
        [sys.executable, "-m", "archiver", "scan", str(tmp_path / "nope")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )
    assert missing.returncode == 2 and "archiver: error: scan:" in missing.stderr


def test_control_characters_in_names_and_values_stay_on_their_line(tmp_path: Path) -> None:
    """A file named with a newline or an escape sequence, or a value an article wrote with
    one, is shown escaped in the table: it cannot start a line of its own or colour the
    terminal (jsonl escapes them as JSON does)."""
    (tmp_path / "a\nfake\ttotal: 99.md").write_text(
        "---\ntitle: t\n---\n<img src='data:image/gif;base64,R0lG\x1b[2J'>\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("a\\x0afake\\x09total: 99\timage=0")
    assert "R0lG\\x1b[2J" in lines[1] and "\x1b" not in result.stdout
    assert len(lines) == 3  # the article, its skipped value, the totals
