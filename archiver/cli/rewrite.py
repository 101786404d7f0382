"""``archiver rewrite``: point articles at their archived copies (a mirror, in place, or a dry
run)."""

from __future__ import annotations

import click

from archiver.cli.app import State, cli, fail
from archiver.cli.options import (
    FilePath,
    apply_options,
    echo_json,
    format_option,
    shown,
    store_options,
)
from archiver.drivers import job
from archiver.errors import ArchiverError
from archiver.rewrite import ArticleResult, Options


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@store_options
@click.option("--base-url", default=None, metavar="URL",
              help="Public URL of the store's objects: references become <URL>/<key> "
              "(default: store.public_base_url, else the store's own URL).")
@click.option("--out", "out_dir", default=None, type=FilePath(file_okay=False),
              help="Write rewritten copies here, mirroring the input tree.")
@click.option("--in-place", is_flag=True, help="Replace the articles (atomically, each file "
              "written to a temporary file and renamed).")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--allow-missing", is_flag=True, help="Exit 0 even when some references are "
              "not archived (they are left as written).")
@click.option("--video-tags", is_flag=True, help="Replace each v.qq.com player (iframe, and "
              "its div.iframe_video wrapper) whose video is archived by a <video> element with "
              "the archived video and thumbnail; what it replaced is kept in the manifest.")
@click.option("--undo-video-tags", is_flag=True, help="Put back the players an earlier "
              "--video-tags replaced, byte for byte.")
@format_option
@click.pass_obj
def rewrite(state: State, paths: tuple[str, ...], store_url: str | None, base_url: str | None,
            out_dir: str | None, in_place: bool, dry_run: bool, allow_missing: bool,
            video_tags: bool, undo_video_tags: bool, fmt: str) -> None:
    """Replace every archived media URL in the articles of PATHS by its preserved copy.

    Only the URLs change; the rest of each file stays byte for byte. References whose asset
    is not archived stay as written and are listed (exit 1 unless --allow-missing);
    v.qq.com players are left alone unless --video-tags. Running it again changes nothing.
    """
    if out_dir and in_place:
        raise click.UsageError("--out and --in-place exclude each other")
    if video_tags and undo_video_tags:
        raise click.UsageError("--video-tags and --undo-video-tags exclude each other")
    if not (out_dir or in_place or dry_run):
        raise click.UsageError("say where to write: --out DIR, --in-place, or --dry-run")
    options = Options(base_url=base_url, out_dir=out_dir, in_place=in_place, dry_run=dry_run,
                      video_tags=video_tags, undo_video_tags=undo_video_tags)
    totals = {"articles": 0, "rewritten": 0, "urls": 0, "missing": 0, "refused": 0,
              "unrewritten": 0, "kept": 0}
    try:
        settings = apply_options(state.settings, store_url=store_url)
        for result in job.rewrite(list(paths), settings, options):
            _report(result, fmt, dry_run)
            _count(totals, result)
    except ArchiverError as exc:
        raise fail(exc) from exc
    verb = "would rewrite" if dry_run else "rewrote"
    click.echo(
        f"{totals['articles']} articles: {verb} {totals['rewritten']} ({totals['urls']} URLs); "
        f"{totals['missing']} references not archived, {totals['kept']} players kept, "
        f"{totals['unrewritten']} not rewritten, {totals['refused']} articles refused",
        err=fmt == "jsonl")
    if totals["refused"] or totals["unrewritten"] or (totals["missing"] and not allow_missing):
        raise click.exceptions.Exit(1)


def _count(totals: dict[str, int], result: ArticleResult) -> None:
    totals["articles"] += 1
    totals["rewritten"] += bool(result.changes) and not result.refused
    totals["urls"] += 0 if result.refused else len(result.changes)
    totals["missing"] += len(result.missing)
    totals["kept"] += len(result.kept)
    totals["unrewritten"] += len(result.unrewritten)
    totals["refused"] += result.refused is not None


def _report(result: ArticleResult, fmt: str, dry_run: bool) -> None:
    article = shown(result.article)
    for warning in result.warnings:
        click.echo(f"archiver: warning: {article}: {shown(warning)}", err=True)
    base = {"article": result.article, "path": result.path}
    if fmt == "jsonl":
        applied = not dry_run and result.refused is None
        for change in result.changes:
            echo_json({"event": "change", **base, **change.to_dict(), "applied": applied})
        for missing in result.missing:
            echo_json({"event": "missing", **base, "origin": missing.origin, "url": missing.url,
                        "kind": missing.kind, "status": missing.status, "error": missing.error})
        for origin in result.unrewritten:
            echo_json({"event": "unrewritten", **base, "origin": origin})
        if result.refused:
            echo_json({"event": "refused", **base, "reason": result.refused})
        return
    if result.changes and not result.refused:
        verb = "would rewrite" if dry_run else "rewrote"
        where = f" -> {result.written}" if result.written and result.written != result.path \
            else ""
        click.echo(f"{verb} {article}: {len(result.changes)} URLs{where}")
        if dry_run:
            for c in result.changes:
                click.echo(f"  {c.line}:{c.column} {c.where} {c.old} -> {c.new}")
    for missing in result.missing:
        error = f" ({missing.error})" if missing.error else ""
        click.echo(f"missing {article}: {missing.status}{error} {missing.url}")
    for origin in result.unrewritten:
        click.echo(f"not rewritten {article}: {origin} (a written form was not found)")
    if result.refused:
        click.echo(f"refused {article}: {result.refused}")
