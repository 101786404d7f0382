"""``archiver scan PATH...``: list the media references of articles (a dry run, no network)."""

from __future__ import annotations

import sys
from collections import Counter

import click

from archiver.cli.app import State, cli, fail
from archiver.cli.failures import echo_skipped
from archiver.cli.options import echo_json, format_option, shown
from archiver.errors import ArchiverError
from archiver.models import KINDS, ArticleScan
from archiver.scan import scan_paths


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@format_option
@click.pass_obj
def scan(state: State, paths: tuple[str, ...], fmt: str) -> None:
    """Find the images, GIFs and videos that articles reference.

    PATH is a file, a directory (scanned recursively for .md, .markdown, .html, .htm) or -
    for standard input. Warnings about bad input go to standard error; they do not stop the
    scan.
    """
    try:
        settings = state.settings.scan
        stdin = sys.stdin
        scans = scan_paths(paths, settings, stdin=stdin)
        totals: Counter[str] = Counter()
        articles = 0
        for result in scans:
            articles += 1
            for warning in result.warnings:
                click.echo(f"archiver: warning: {result.path}: {warning}", err=True)
            if fmt == "jsonl":
                for ref in result.references:
                    echo_json(ref.to_dict())
            else:
                click.echo(_row(result))
            echo_skipped(result, fmt)
            totals.update(ref.kind for ref in result.references)
            totals["skipped"] += len(result.skipped)
            totals["warnings"] += len(result.warnings)
    except ArchiverError as exc:
        raise fail(exc) from exc
    if fmt == "table":
        click.echo(_totals(articles, totals))
    sys.stdout.flush()


def _row(result: ArticleScan) -> str:
    kinds = Counter(ref.kind for ref in result.references)
    counts = "  ".join(f"{kind}={kinds[kind]}" for kind in KINDS)
    extra = f"  skipped={len(result.skipped)}" if result.skipped else ""
    flag = "  (warnings)" if result.warnings else ""
    return f"{shown(result.article)}\t{counts}{extra}{flag}"


def _totals(articles: int, totals: Counter[str]) -> str:
    kinds = "  ".join(f"{kind}={totals[kind]}" for kind in KINDS)
    refs = sum(totals[kind] for kind in KINDS)
    return (f"total: {articles} articles  {refs} references  {kinds}  "
            f"skipped={totals['skipped']}  warnings={totals['warnings']}")
