"""The index's rows kept compact (manifest/rows.py): the same rows, bytes and statuses as the
dicts they replace, for this layout and older ones, damaged lines, and any chunking."""

from __future__ import annotations

import json

import pytest

from archiver.manifest import rows as rows_module
from archiver.manifest.index import decode_index, encode_index
from archiver.manifest.records import dumps


def _row(n: int, **extra: object) -> dict[str, object]:
    sha = f"{n:064x}"
    row: dict[str, object] = {
        "id": sha, "status": "archived" if n % 3 else "failed", "origin": f"http://h/{n}.jpg",
        "kind": "image", "key": f"media/{sha[:2]}/{sha}.jpg", "sha256": sha, "size": 1000 + n,
        "content_type": "image/jpeg", "route": "direct",
        "updated_at": f"2026-01-01T00:00:{n % 60:02d}", "error": None if n % 3 else "http_404"}
    row.update(extra)
    return row


def _index(lines: list[dict[str, object]]) -> bytes:
    return b"".join(dumps(line) + b"\n" for line in lines)


def test_rows_read_back_as_the_dicts_they_were_and_encode_to_the_same_bytes() -> None:
    lines: list[dict[str, object]] = [{"segments": ["s1", "s2"]}]
    lines += [_row(n) for n in range(1, 7)]
    lines[2]["segments"] = [1]
    lines[2]["file"] = False
    lines[3]["record_version"] = '"etag"'
    lines[3]["record_size"] = 321
    del lines[4]["route"]  # an older row without some fields
    del lines[4]["error"]
    lines[5]["future"] = {"x": 1}  # a key this version does not know
    data = _index(lines)
    rows, names = decode_index(data)
    assert names == ["s1", "s2"] and len(rows) == 6
    plain = {line["id"]: line for line in (json.loads(x) for x in data.splitlines()[1:])}
    plain[lines[2]["id"]]["segments"] = ["s2"]
    assert {asset: rows[asset] for asset in rows} == plain
    assert encode_index(rows, tuple(names)) == data
    assert "route" not in rows[str(lines[4]["id"])]
    assert rows.statuses() == {a: r["status"] for a, r in plain.items()}
    assert rows.count_statuses() == {"archived": 4, "failed": 2}
    assert rows.located() == {lines[2]["id"]: ["s2"]}
    old = str(lines[4]["id"])
    assert rows.summary(old) == ("archived", plain[old]["key"], old, plain[old]["size"],
                                 "image/jpeg", None)
    assert rows.summary("0" * 64) is None and rows.status_of("0" * 64) is None


def test_a_row_written_back_keeps_its_change_and_copies_are_apart() -> None:
    rows, _ = decode_index(_index([_row(1), _row(2)]))
    asset = f"{1:064x}"
    row = rows[asset]
    row["status"] = "failed"
    assert rows.status_of(asset) == "archived"  # a row read is a new dict
    copy = rows.copy()
    copy[asset] = row
    assert copy.status_of(asset) == "failed" and rows.status_of(asset) == "archived"
    del copy[asset]
    assert asset not in copy and asset in rows and len(copy) == 1


def test_damaged_and_empty_lines_cost_only_their_rows_at_any_chunk_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    good = [_row(n) for n in range(1, 40)]
    data = _index(good[:10]) + b"{not json\n\n" + _index(good[10:20]) + b"[1]\n\"x\"\n" \
        + _index(good[20:])
    for chunk in (1, 100, 1000, 1 << 20):
        monkeypatch.setattr(rows_module, "_CHUNK", chunk)
        rows, names = decode_index(data)
        assert names == [] and sorted(rows) == sorted(str(r["id"]) for r in good)
        assert encode_index(rows, ()) == _index(sorted(good, key=lambda r: str(r["id"])))


def test_article_keys_are_the_encoded_ids_whether_plain_or_not() -> None:
    from archiver.manifest.articles import ARTICLES_PREFIX, article_key
    from archiver.store.keys import encode_path

    names = ["a", "post-1", "2021/01/post_1.v2", "x~y", ".hidden", "a/.b", "a//b", "/a", "a/",
             "é", "a b", "a%20b", "a" * 200, "a" * 201, "/".join(["b" * 150] * 6),
             "/".join(["c" * 199] * 5), "a\\b", "ok/../x", "-_~", "..", "a?b", "a#b"]
    for name in names:
        assert article_key(name) == f"{ARTICLES_PREFIX}{encode_path(name)}.json", name
