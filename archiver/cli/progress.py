"""Progress for runs without a terminal (logs, CI, cron): one line on stderr every so often,
from a timer, so a run stuck on slow hosts still says where it is."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from archiver.models import Record

INTERVAL = 10.0  # seconds between lines


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
