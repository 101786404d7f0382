"""``archiver archive``, ``archiver manifest build`` and ``archiver verify``: the in-process job."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack

import click

from archiver.cli.app import State, cli, fail
from archiver.cli.failures import echo_skipped, failure_lines
from archiver.cli.options import (
    apply_options,
    echo_json,
    echo_warnings,
    fetch_options,
    format_option,
    store_options,
)
from archiver.cli.progress import human_bytes, record_progress
from archiver.drivers import job
from archiver.drivers.runner import RunSummary
from archiver.errors import ArchiverError
from archiver.models import ArticleScan, Record
from archiver.plan import Plan
from archiver.settings import Settings


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@store_options
@fetch_options
@click.option("--concurrency", "-j", type=int, default=None,
              help="Assets archived at once, at least 1 (default: runner.concurrency "
              "in the settings, 32 unless configured; each host also has its cap, "
              "fetch.per_host_concurrency, 4).")
@click.option("--dry-run", is_flag=True, help="Print the plan (assets, routes, status); fetch "
              "nothing.")
@format_option
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@click.pass_obj
def archive(state: State, paths: tuple[str, ...], store_url: str | None,
            connect_to: tuple[str, ...], allow_private: tuple[str, ...],
            concurrency: int | None, dry_run: bool, fmt: str, progress: bool | None) -> None:
    """Archive every image, GIF and video the articles in PATHS reference ('-' = stdin)."""
    # A bar on a terminal, a line every few seconds without one, nothing with --no-progress.
    show = progress if progress is not None else (True if sys.stderr.isatty() else None)
    try:
        settings = apply_options(state.settings, store_url=store_url, connect_to=connect_to,
                                 allow_private=allow_private, concurrency=concurrency)
        if dry_run:
            scans, plan = job.plan_paths(paths, settings)
            echo_warnings(scans)
            for scan in scans:
                echo_skipped(scan, fmt)
            _print_plan(plan, settings, fmt)
            return
        with ExitStack() as stack:
            ticks: list[Callable[[Record], None]] = []

            def on_plan(scans: list[ArticleScan], plan: Plan) -> None:
                echo_warnings(scans)
                if fmt == "jsonl":
                    for asset in plan.archived:
                        echo_json({"id": asset.id, "origin": asset.origin, "kind": asset.kind,
                                    "status": "archived", "unchanged": True})
                ticks.append(stack.enter_context(record_progress(len(plan.todo), show)))

            failures: list[Record] = []

            def on_record(record: Record) -> None:
                ticks[0](record)
                if fmt == "jsonl":
                    echo_json(record.to_dict())
                elif record.status != "archived":
                    failures.append(record)

            result = job.archive_paths(paths, settings, on_plan=on_plan, on_record=on_record)
    except ArchiverError as exc:
        raise fail(exc) from exc
    for line in failure_lines((r.status, r.origin, r.error) for r in failures):
        click.echo(line)
    if result.claims_note:
        click.echo(f"archiver: warning: {result.claims_note}", err=True)
    _print_summary(result.summary, result.plan.counts["archived"], fmt)
    if result.summary.failed or result.summary.stopped is not None:
        raise click.exceptions.Exit(1)


def _print_plan(plan: Plan, settings: Settings, fmt: str) -> None:
    for asset in plan.describe(settings):
        if fmt == "jsonl":
            echo_json(asset)
            continue
        click.echo(f"{asset['status']:8} {asset['kind']:5} {asset['origin']}")
        for route in asset["routes"]:
            click.echo(f"{'':14} {route['name']:6} {route['url']}")
    counts = plan.counts
    click.echo(f"{counts['assets']} assets: {counts['archived']} archived, {counts['todo']} to "
               f"fetch ({counts['retrying']} retrying)", err=fmt == "jsonl")


def _print_summary(summary: RunSummary, unchanged: int, fmt: str) -> None:
    s = summary.to_dict()
    errors = ", ".join(f"{code}: {n}" for code, n in summary.errors.most_common())
    click.echo(
        f"archived {s['archived']}"
        + (f" ({s['recovered']} recovered from the Wayback Machine)" if s["recovered"] else "")
        + f", failed {s['failed']}, skipped {s['skipped']}, already "
        f"archived {unchanged}; {human_bytes(summary.bytes)} in {summary.elapsed:.1f}s"
        + (f" [{errors}]" if errors else ""),
        err=fmt == "jsonl",
    )
    if summary.stopped is not None:
        click.echo(f"archiver: stopped: {summary.stopped.code}: {summary.stopped.message}; "
                   f"{summary.not_attempted} assets not attempted (run again once the store "
                   f"takes writes)", err=True)


@cli.group()
def manifest() -> None:
    """Build and inspect the manifest."""


@manifest.command("build")
@store_options
@click.option("--full", is_flag=True, help="List and compare every record, not only those "
              "changed since the last build (repairs an index that missed a change).")
@click.pass_obj
def manifest_build(state: State, store_url: str | None, full: bool) -> None:
    """Compact every asset record into manifest/index.jsonl."""
    settings = apply_options(state.settings, store_url=store_url)
    try:
        stats = job.build_index(settings, full=full)
    except ArchiverError as exc:
        raise fail(exc) from exc
    click.echo(json.dumps(vars(stats), sort_keys=True))


@cli.command()
@store_options
@format_option
@click.pass_obj
def verify(state: State, store_url: str | None, fmt: str) -> None:
    """Check fixity: every archived record's object exists and hashes to its sha256."""
    settings = apply_options(state.settings, store_url=store_url)
    try:
        report = job.verify(settings)
    except ArchiverError as exc:
        raise fail(exc) from exc
    for problem in report.problems:
        if fmt == "jsonl":
            echo_json(problem)
        else:
            click.echo(f"{problem['problem']:10} {problem['key']} {problem['origin']}")
    click.echo(f"verified {report.checked} objects: {report.ok} ok, {len(report.problems)} "
               f"problems", err=fmt == "jsonl")
    if report.problems:
        raise click.exceptions.Exit(1)
