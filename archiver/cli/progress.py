"""Progress of the archiving commands: a bar on a terminal (``--progress``), and for runs
without one (logs, CI, cron) a line on stderr every so often, from a timer, so a run stuck on
slow hosts still says where it is."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from archiver.models import Record

INTERVAL = 10.0  # seconds between lines
T = TypeVar("T")


@contextmanager
def periodic_line(line: Callable[[float], str],
                  interval: float | None = None) -> Iterator[None]:
    """While the block runs, ``line(elapsed seconds)`` goes to stderr every ``interval``."""
    stop = threading.Event()
    started = time.monotonic()

    def report() -> None:
        while not stop.wait(interval or INTERVAL):
            click.echo(line(time.monotonic() - started), err=True)

    thread = threading.Thread(target=report, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _line(total: int, what: str, counts: Counter[str], elapsed: float) -> str:
    done = counts["archived"] + counts["failed"] + counts["skipped"]
    size = f", {counts['bytes'] / 1e6:.1f} MB" if "bytes" in counts else ""
    return (f"archiver: {done}/{total} {what} done ({counts['failed']} failed, "
            f"{counts['skipped']} skipped){size}, {elapsed:.0f} s")


@contextmanager
def progress_lines(total: int, what: str = "assets") -> Iterator[Callable[[Record], None]]:
    """A ``tick(record)`` to call per finished record; meanwhile a line such as
    ``archiver: 120/160 assets done (3 failed, 0 skipped), 12.3 MB, 45 s`` now and then."""
    counts: Counter[str] = Counter({"bytes": 0})
    lock = threading.Lock()

    def tick(record: Record) -> None:
        with lock:
            counts[record.status] += 1
            if record.status == "archived":
                counts["bytes"] += record.size or 0

    def line(elapsed: float) -> str:
        with lock:
            return _line(total, what, counts, elapsed)

    with periodic_line(line):
        yield tick


@contextmanager
def progress_counts(total: int, what: str = "assets") -> Iterator[Callable[[Counter[str]], None]]:
    """As ``progress_lines``, fed with counts by status (the workers' batch progress)."""
    latest: list[Counter[str]] = [Counter()]

    def update(counts: Counter[str]) -> None:
        latest[0] = Counter(counts)

    with periodic_line(lambda elapsed: _line(total, what, latest[0], elapsed)):
        yield update


@contextmanager
def record_progress(total: int, show: bool | None) -> Iterator[Callable[[Record], None]]:
    """A ``tick(record)`` per finished record (``archive``): a bar when ``show``, timed lines
    when ``show`` is None (no terminal), nothing when False or there is nothing to do."""
    with _chosen(total, show, progress_lines, _record_bar) as tick:
        yield tick


@contextmanager
def counts_progress(total: int, show: bool | None) -> Iterator[Callable[[Counter[str]], None]]:
    """As ``record_progress``, fed with the workers' counts by status (``enqueue --wait``)."""
    with _chosen(total, show, progress_counts, _counts_bar) as update:
        yield update


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@contextmanager
def _chosen(total: int, show: bool | None, lines: Callable[[int], Any],
            bar: Callable[[int], Any]) -> Iterator[Callable[[T], None]]:
    if not total or show is False:
        yield lambda _: None
    else:
        with (lines if show is None else bar)(total) as tick:
            yield tick


@contextmanager
def _record_bar(total: int) -> Iterator[Callable[[Record], None]]:
    from rich.progress import TextColumn, TimeRemainingColumn

    counts: Counter[str] = Counter()
    fields = TextColumn("failed {task.fields[failed]} skipped {task.fields[skipped]} "
                        "{task.fields[stored]}")
    with _bar("archiving", total, fields, TimeRemainingColumn(),
              failed=0, skipped=0, stored="0 B") as (bar, task):

        def tick(record: Record) -> None:
            counts[record.status] += 1
            counts["bytes"] += record.size or 0
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f" ({human_bytes(counts['bytes'] / elapsed)}/s)" if elapsed > 0 else ""
            bar.update(task, advance=1, failed=counts["failed"], skipped=counts["skipped"],
                       stored=human_bytes(counts["bytes"]) + rate)

        yield tick


@contextmanager
def _counts_bar(total: int) -> Iterator[Callable[[Counter[str]], None]]:
    from rich.progress import TextColumn

    with _bar("workers", total, TextColumn("failed {task.fields[failed]}"),
              failed=0) as (bar, task):

        def tick(counts: Counter[str]) -> None:
            bar.update(task, completed=sum(counts.values()), failed=counts["failed"])

        yield tick


@contextmanager
def _bar(title: str, total: int, *columns: Any, **fields: Any) -> Iterator[tuple[Any, Any]]:
    """A rich bar on stderr: title, bar, done/total, ``columns``, elapsed time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), columns[0],
                  TimeElapsedColumn(), *columns[1:], console=Console(stderr=True)) as bar:
        yield bar, bar.add_task(title, total=total, **fields)
