"""``archiver report OUT``: a static HTML page of what the archive holds."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.cli.app import State, cli
from archiver.cli.options import FilePath, apply_options, echo_json, format_option, store_options
from archiver.manifest import Manifest
from archiver.report import write_report
from archiver.store import open_store


@cli.command()
@click.argument("out", type=FilePath(dir_okay=False, writable=True, path_type=Path))
@store_options
@format_option
@click.pass_obj
def report(state: State, out: Path, store_url: str | None, fmt: str) -> None:
    """Write OUT, a self-contained HTML report of the archive: totals by status and route, then
    each article's references with a thumbnail of the preserved copy and the reason for each
    failure. It opens from disk, without a server (S3: thumbnails from store.public_base_url).
    """
    settings = apply_options(state.settings, store_url=store_url)
    try:
        with open_store(settings.store) as store:
            stats = write_report(Manifest(store), store, settings, out)
    except OSError as exc:
        raise click.FileError(str(out), hint=exc.strerror or str(exc)) from exc
    if fmt == "jsonl":
        echo_json(stats.to_dict())
        return
    counts = ", ".join(f"{n} {status}" for status, n in stats.statuses.most_common())
    click.echo(f"wrote {stats.path}: {stats.assets} assets ({counts or 'none'}) in "
               f"{stats.articles} articles, {stats.thumbnails} thumbnails")
