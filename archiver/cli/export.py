"""``archiver export warc|wacz``: the archive as standard web-archive files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from archiver.cli.app import State, cli, fail
from archiver.cli.options import FilePath, apply_options, echo_json, format_option, store_options
from archiver.dates import parse_time
from archiver.errors import ArchiverError
from archiver.export.select import Selection
from archiver.manifest import Manifest
from archiver.store import open_store

F = TypeVar("F", bound=Callable[..., Any])


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_time(value)
    if parsed is None:
        raise click.BadParameter(f"not an ISO 8601 date or time: {value!r}")
    return parsed.astimezone(UTC)


def selection_options(func: F) -> F:
    """``--article GLOB`` (repeatable), ``--since`` and ``--until`` (capture time)."""
    func = click.option("--until", callback=_time, default=None, metavar="DATE",
                        help="Only assets captured before this time (ISO 8601, UTC if no "
                        "zone).")(func)
    func = click.option("--since", callback=_time, default=None, metavar="DATE",
                        help="Only assets captured at or after this time.")(func)
    func = click.option("--article", "articles", multiple=True, metavar="GLOB",
                        help="Only assets cited by articles whose id matches (repeatable).")(func)
    return func


@cli.group()
def export() -> None:
    """Export the archive as WARC or WACZ for web-archive tools (pywb, ReplayWeb.page)."""


def _run(state: State, store_url: str | None, fmt: str,
         write: Callable[[Manifest], Any]) -> None:
    settings = apply_options(state.settings, store_url=store_url)
    try:
        with open_store(settings.store) as store:
            stats = write(Manifest(store))
    except ArchiverError as exc:
        raise fail(exc) from exc
    warc = getattr(stats, "warc", stats)
    for problem in warc.problems:
        if fmt == "jsonl":
            echo_json(problem)
        else:
            click.echo(f"{problem['problem']:8} {problem['origin']}: {problem['detail']}",
                       err=True)
    summary = stats.to_dict()
    if fmt == "jsonl":
        echo_json(summary)
    else:
        types = ", ".join(f"{n} {kind}" for kind, n in sorted(summary["types"].items()))
        click.echo(f"exported {summary['assets']} assets ({summary['payload_bytes']} bytes) "
                   f"in {summary['records']} records: {types}"
                   + (f"; {summary['pages']} pages" if "pages" in summary else "")
                   + (f"; {summary['problems']} left out" if summary["problems"] else ""))
    if warc.problems:
        raise click.exceptions.Exit(1)


@export.command("warc")
@click.argument("out", type=FilePath(dir_okay=False, writable=True))
@store_options
@selection_options
@format_option
@click.pass_obj
def export_warc_command(state: State, out: str, store_url: str | None,
                        articles: tuple[str, ...], since: datetime | None,
                        until: datetime | None, fmt: str) -> None:
    """Write the archived assets to OUT as WARC 1.1 (one gzip member per record if OUT ends in
    .gz). Exits 1 if an object was missing or damaged (left out, listed)."""
    from archiver.export.job import export_warc

    selection = Selection(articles, since, until)
    _run(state, store_url, fmt, lambda manifest: export_warc(manifest, out, selection))


@export.command("wacz")
@click.argument("out", type=FilePath(dir_okay=False, writable=True))
@store_options
@selection_options
@click.option("--article-manifests/--no-article-manifests", default=True, show_default=True,
              help="Include each exported article's manifest under articles/.")
@click.option("--title", default=None, help="The collection's title (datapackage.json).")
@format_option
@click.pass_obj
def export_wacz_command(state: State, out: str, store_url: str | None,
                        articles: tuple[str, ...], since: datetime | None,
                        until: datetime | None, article_manifests: bool, title: str | None,
                        fmt: str) -> None:
    """Write the archived assets to OUT as WACZ 1.1.1 (WARC, CDXJ index, one page per
    article, datapackage), ready for ReplayWeb.page."""
    from archiver.export.wacz import export_wacz

    selection = Selection(articles, since, until)
    _run(state, store_url, fmt, lambda manifest: export_wacz(
        manifest, out, selection, article_manifests=article_manifests, title=title))
