"""The plan: one asset per origin across articles, split by the manifest's statuses, and the
dry run's description of it (pure: no store, no network)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from archiver.cli.app import load_commands
from archiver.models import ArticleScan, Citation, Reference, asset_id
from archiver.plan import collect_assets, make_plan, plan_scans
from archiver.plan.routes import lookup_url
from archiver.settings import Settings

A = "http://zkres1.myzaker.com/201907/a_1024.jpg"
B = "https://static.cnbetacdn.com/article/b.gif"
C = "https://example.org/c.png"
ZFOUR = "https://cors.zfour.workers.dev/?"
cli = load_commands()


def ref(article: str, origin: str, kind: str = "image", where: tuple[str, ...] = ("img[src]",),
        proxy: str | None = None, alternates: tuple[str, ...] = ()) -> Reference:
    url = (proxy or "") + origin
    return Reference(article, where, kind, url, origin, proxy, alternates)


def test_one_asset_per_origin_with_every_sighting_merged() -> None:
    scans = [
        ArticleScan("a", "a.md", (ref("a", A, proxy=ZFOUR), ref("a", B, "image"))),
        ArticleScan("b", "b.md", (ref("b", A, where=("front_matter.headimg",)),
                                  ref("b", B, "gif", alternates=(B, C)))),
        ArticleScan("c", "c.md", (ref("c", A, where=("img[src]", "img[data-src]")),)),
    ]
    assets = collect_assets(scans)
    assert [a.origin for a in assets] == [A, B]  # first-seen order
    first, gif = assets
    assert first.proxies == (ZFOUR,)
    assert first.urls == (ZFOUR + A, A)
    assert first.citations == (Citation("a", ("img[src]",)),
                               Citation("b", ("front_matter.headimg",)),
                               Citation("c", ("img[src]", "img[data-src]")))
    # The most specific kind wins; an alternate equal to the origin is not an alternate.
    assert gif.kind == "gif" and gif.alternates == (C,)


def test_the_plan_splits_by_status_and_counts_retries() -> None:
    assets = collect_assets([ArticleScan("a", "a.md", (ref("a", A), ref("a", B), ref("a", C)))])
    plan = make_plan(assets, {asset_id(A): "archived", asset_id(B): "failed"})
    assert [a.origin for a in plan.archived] == [A]
    assert [a.origin for a in plan.todo] == [B, C]
    assert plan.recorded == frozenset({asset_id(B)})  # C has no record: saved create-only
    assert plan.counts == {"assets": 3, "archived": 1, "todo": 2, "retrying": 1}
    skipped = make_plan(assets, {asset_id(C): "skipped"})
    assert skipped.retrying == 0 and skipped.recorded == frozenset({asset_id(C)})


def test_planning_from_the_scans_gives_the_plan_of_every_merged_asset() -> None:
    scans = [
        ArticleScan("a", "a.md", (ref("a", A, proxy=ZFOUR), ref("a", B, "image"),
                                  ref("a", C)), date="2021-05-01"),
        ArticleScan("b", "b.md", (ref("b", C, where=("front_matter.headimg",)),
                                  ref("b", B, "gif", alternates=(B, A)))),
        ArticleScan("c", "c.md", (ref("c", A, where=("img[src]", "img[data-src]")),
                                  ref("c", C, proxy=ZFOUR))),
        ArticleScan("d", "d.md"),
    ]
    for statuses in ({}, {asset_id(A): "archived", asset_id(B): "archived",
                          asset_id(C): "archived"},
                     {asset_id(A): "archived", asset_id(B): "failed"},
                     {asset_id(C): "skipped", asset_id(B): "archived"}):
        old, new = make_plan(collect_assets(scans), statuses), plan_scans(scans, statuses)
        assert new.counts == old.counts  # known before the archived assets are merged
        assert new.todo == old.todo and new.recorded == old.recorded
        assert new.retrying == old.retrying
        assert new.archived == old.archived and new.assets == old.assets
        assert list(new.describe(Settings())) == list(old.describe(Settings()))
        looked_up = plan_scans(scans, statuses.get)  # a lookup instead of a mapping
        assert looked_up.todo == old.todo and looked_up.counts == old.counts


def test_the_dry_run_describes_each_asset_with_its_routes() -> None:
    assets = collect_assets([ArticleScan("a", "a.md", (ref("a", A, proxy=ZFOUR), ref("a", B)))])
    plan = make_plan(assets, {asset_id(B): "archived"})
    todo, done = plan.describe(Settings())
    assert todo["id"] == asset_id(A) and todo["status"] == "todo"
    assert todo["origin"] == A and todo["citations"] == [{"article": "a", "where": ["img[src]"]}]
    assert todo["routes"] == [{"name": "direct", "url": A}, {"name": "proxy", "url": ZFOUR + A},
                              {"name": "wayback",
                               "url": lookup_url("https://web.archive.org", A, 2000)}]
    assert done["status"] == "archived" and done["routes"] == []


def test_archive_dry_run_prints_the_description(tmp_path: Path) -> None:
    post = tmp_path / "posts" / "a.md"
    post.parent.mkdir()
    post.write_text(f'---\ntitle: a\n---\n<img src="{ZFOUR}{A}">\n', encoding="utf-8")
    args = ["archive", str(post.parent), "--dry-run", "--store", str(tmp_path / "archive")]
    table = CliRunner().invoke(cli, args, prog_name="archiver")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == [
        f"todo     image {A}", f"{'':14} direct {A}", f"{'':14} proxy  {ZFOUR}{A}",
        "1 assets: 0 archived, 1 to fetch (0 retrying)"]
    jsonl = CliRunner().invoke(cli, [*args, "--format", "jsonl"], prog_name="archiver")
    (row,) = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert row["status"] == "todo" and row["routes"][1] == {"name": "proxy", "url": ZFOUR + A}
    assert not (tmp_path / "archive" / "media").exists()
