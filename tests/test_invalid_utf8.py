"""An article that is not valid UTF-8: each URL keeps the bytes it holds, percent-encoded (not
U+FFFD), the origin is asked for exactly those bytes, and rewrite changes only the URLs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.scan import scan_text
from archiver.scan.articles import decode
from archiver.settings import ScanSettings
from tests.support import media
from tests.support.origin import OriginServer, Response

SCAN = ScanSettings()
cli = load_commands()
ARTICLE = (b"\n---\ntitle: 'caf\xe9 \xff'\nheadimg: 'https://cors.zfour.workers.dev/?"
           b"http%3A%2F%2Fzkres1.myzaker.com%2Fq%E9.jpg'\n---\n"
           b'<div><p>\xfe\xfe latin-1 text</p><img src="http://zkres1.myzaker.com/p\xe9 x.jpg">'
           b"</div>\n![m](http://zkres1.myzaker.com/m\xff\xfed.png)\n"
           b'<img src="http://zkres1.\xe9xample.com/bad-host.jpg">\n')


def test_invalid_bytes_are_percent_encoded_in_origins() -> None:
    text = decode(ARTICLE, SCAN)
    assert text.text is not None and "invalid UTF-8" in text.warnings[0]
    scan = scan_text(text.text, "a", SCAN)
    assert {r.origin for r in scan.references} == {
        "http://zkres1.myzaker.com/q%E9.jpg",
        "http://zkres1.myzaker.com/p%E9%20x.jpg",
        "http://zkres1.myzaker.com/m%FF%FEd.png",
    }
    # URLs as written are recorded with the bytes visible, never U+FFFD.
    written = {r.url for r in scan.references} | {s.value for s in scan.skipped}
    assert "http://zkres1.myzaker.com/p%E9 x.jpg" in written
    assert "http://zkres1.%E9xample.com/bad-host.jpg" in written  # skipped: no such host
    assert not any("\ufffd" in w or "%EF%BF%BD" in w for w in written)
    assert scan.title == "caf\ufffd \ufffd"  # text for people shows U+FFFD


def test_archive_fetches_the_bytes_the_article_holds_and_rewrite_keeps_the_rest(
        origin: OriginServer, tmp_path: Path) -> None:
    for path, body in (("/q%E9.jpg", media.jpeg(9, 9)), ("/p%E9%20x.jpg", media.jpeg(8, 8)),
                       ("/m%FF%FEd.png", media.png(7, 7))):
        origin.add(path, Response(body=body, content_type=None))
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "latin.md").write_bytes(ARTICLE)
    store = str(tmp_path / "archive")
    connect = [f"{h}:80:127.0.0.1:{origin.port}"
               for h in ("zkres1.myzaker.com", "cors.zfour.workers.dev")]
    args = ["archive", str(posts), "--store", store, "--allow-private", "127.0.0.0/8",
            "--format", "jsonl", *[a for rule in connect for a in ("--connect-to", rule)]]
    result = CliRunner().invoke(cli, args, env={"ARCHIVER_FETCH__RETRIES": "0"})
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["status"] for r in records) == ["archived"] * 3
    assert sorted(origin.hits) == ["/m%FF%FEd.png", "/p%E9%20x.jpg", "/q%E9.jpg"]
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["rewrite", str(posts), "--store", store, "--out", str(out),
                                      "--base-url", "https://m.example.org"])
    assert result.exit_code == 0, result.output
    rewritten = (out / "latin.md").read_bytes()
    assert b"zkres1.myzaker.com/p" not in rewritten and b"zkres1.myzaker.com/m" not in rewritten
    assert b"https://m.example.org/media/" in rewritten
    # Everything but the three URLs is the article's own bytes, invalid ones included.
    kept = [b"title: 'caf\xe9 \xff'", b"<p>\xfe\xfe latin-1 text</p>",
            b'<img src="http://zkres1.\xe9xample.com/bad-host.jpg">']
    assert all(piece in rewritten for piece in kept)
