"""``archiver enqueue`` and ``archiver status``: the distributed job, from the enqueuing side."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import click

from archiver.cli.app import State, cli, fail
from archiver.cli.failures import echo_failures
from archiver.cli.options import (
    Seconds,
    apply_options,
    echo_json,
    echo_warnings,
    format_option,
    store_options,
)
from archiver.cli.progress import counts_progress
from archiver.errors import ArchiverError


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@store_options
@click.option("--wait", is_flag=True, help="Wait until every enqueued asset has a record, then "
              "print the summary and exit 1 if any failed.")
@click.option("--timeout", type=Seconds(), default=None, metavar="SECONDS",
              help="With --wait: give up after this long (exit 1).")
@format_option
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr with --wait (default: when stderr is a terminal).")
@click.pass_obj
def enqueue(state: State, paths: tuple[str, ...], store_url: str | None, wait: bool,
            timeout: float | None, fmt: str, progress: bool | None) -> None:
    """Send the assets of the articles in PATHS that are not archived yet to the workers."""
    from archiver.drivers import job
    from archiver.drivers.enqueue import Enqueued

    # A bar on a terminal, a line every few seconds without one, nothing with --no-progress.
    show = progress if progress is not None else (True if sys.stderr.isatty() else None)
    try:
        settings = apply_options(state.settings, store_url=store_url)
        with ExitStack() as stack:
            ticks: list[Callable[[Counter[str]], None]] = []

            def on_sent(sent: Enqueued) -> None:
                _report(sent.to_dict(), fmt, "enqueued",
                        f"found {sent.found} assets: {sent.archived} already archived, "
                        f"{sent.enqueued} enqueued (batch {sent.batch})")
                for warning in sent.warnings:
                    click.echo(f"archiver: warning: {warning}", err=True)
                bar = counts_progress(sent.enqueued, show if wait else False)
                ticks.append(stack.enter_context(bar))

            result = job.enqueue_paths(paths, settings, wait=wait, timeout=timeout,
                                       on_plan=lambda scans, plan: echo_warnings(scans),
                                       on_sent=on_sent,
                                       on_progress=lambda counts: ticks[0](counts))
    except ArchiverError as exc:
        raise fail(exc) from exc
    if result.counts is None:
        return
    sent, counts = result.sent, result.counts
    summary = {"batch": sent.batch, "archived": counts["archived"],
               "recovered": result.recovered, "failed": counts["failed"],
               "skipped": counts["skipped"], "already_archived": sent.archived,
               "pending": result.pending}
    recovered = f" ({result.recovered} recovered from the Wayback Machine)" \
        if result.recovered else ""
    echo_failures(result.failures, fmt)
    _report(summary, fmt, "summary",
            f"archived {counts['archived']}{recovered}, failed {counts['failed']}, skipped "
            f"{counts['skipped']}, already archived {sent.archived}"
            + (f", still pending {result.pending}" if result.pending else ""))
    if counts["failed"] or result.pending:
        raise click.exceptions.Exit(1)


def _report(data: dict[str, Any], fmt: str, event: str, line: str) -> None:
    if fmt == "jsonl":
        echo_json({"event": event, **data})
    else:
        click.echo(line)


@cli.command()
@store_options
@format_option
@click.pass_obj
def status(state: State, store_url: str | None, fmt: str) -> None:
    """Queue depths, assets in flight, archived/failed counts, hosts paused now."""
    from archiver.drivers import job

    try:
        snap, failures = job.status(apply_options(state.settings, store_url=store_url))
    except ArchiverError as exc:
        raise fail(exc) from exc
    if fmt == "jsonl":
        echo_json(snap)
    else:
        _print_status(snap)
    echo_failures(failures, fmt)
    if snap.get("queue") == "unreachable":
        raise click.exceptions.Exit(1)


def _print_status(snap: dict[str, Any]) -> None:
    if snap.get("queue") == "unreachable":
        click.echo(f"queue           unreachable: {snap['error']}")
    else:
        for queue, depth in snap["queues"].items():
            click.echo(f"queue {queue:10} {depth} waiting")
        click.echo(f"in flight       {snap['in_flight']} claimed, {snap['unacked']} unacked")
    m = snap["manifest"]
    recovered = f" ({m['recovered']} recovered from the Wayback Machine)" if m["recovered"] \
        else ""
    click.echo(f"manifest        {m['archived']} archived{recovered}, {m['failed']} failed, "
               f"{m['skipped']} skipped")
    paused = snap.get("paused", {})
    if not paused and snap.get("queue") != "unreachable":
        click.echo("paused hosts    none")
    for host, left in sorted(paused.items()):
        click.echo(f"paused          {host} ({left:.1f}s left)")
