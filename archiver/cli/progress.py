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
def progress_lines(total: int, what: str = "assets",
                   interval: float | None = None) -> Iterator[Callable[[Record], None]]:
    """A ``tick(record)`` to call per finished record; while the block runs, a line such as
    ``archiver: 120/160 assets done (3 failed, 0 skipped), 12.3 MB, 45 s`` goes to stderr every
    ``interval`` seconds."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    started = time.monotonic()

    def tick(record: Record) -> None:
        with lock:
            counts[record.status] += 1
            if record.status == "archived":
                counts["bytes"] += record.size or 0

    def report() -> None:
        while not stop.wait(interval or INTERVAL):
            with lock:
                done = counts["archived"] + counts["failed"] + counts["skipped"]
                line = (f"archiver: {done}/{total} {what} done ({counts['failed']} failed, "
                        f"{counts['skipped']} skipped), {counts['bytes'] / 1e6:.1f} MB, "
                        f"{time.monotonic() - started:.0f} s")
            click.echo(line, err=True)

    thread = threading.Thread(target=report, name="progress", daemon=True)
    if total:
        thread.start()
    try:
        yield tick
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
