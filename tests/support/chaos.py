"""The fault matrix of issue 10, shared by ``tests/test_fault_fleet.py`` (a few assets each) and
``bench/chaos.py`` (hundreds): each fault is injected into a running fleet while a batch is
being archived, then cleared; ``run`` returns the ``Outcome`` measured from that moment.

A fault is a function of the fleet returning the downloads it may cost again: those the killed
process had in flight, or for an outage those in flight across the fleet when it began (their
bytes cannot be stored); it returns once the fault has cleared.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.support import hostile, media
from tests.support.faults import SmallFs
from tests.support.fleet import Fleet, Outcome, Served, converge, media_body, media_keys
from tests.support.origin import OriginServer

Fault = Callable[[Fleet], int]


def kill_child(fleet: Fleet) -> int:
    """SIGKILL one prefork child that is downloading."""
    worker, child = fleet.busy_worker()
    in_flight = worker.downloads(fleet.origin, [child])
    os.kill(child, signal.SIGKILL)
    return in_flight


def kill_main(fleet: Fleet) -> int:
    """SIGKILL the main process of a worker that is downloading (its children are orphaned,
    as with ``kill -9 <pid>``). The fleet runs on with one worker fewer: ``replace_dead``
    restarts it afterwards, as a process supervisor would."""
    worker, _child = fleet.busy_worker()
    in_flight = worker.downloads(fleet.origin)
    worker.kill_main()
    return in_flight


def replace_dead(fleet: Fleet) -> None:
    for worker in [w for w in fleet.workers if w.proc.poll() is not None]:
        worker.stop()
        fleet.workers.remove(worker)
        fleet.start_workers(1)


def at_onset(fleet: Fleet, begin: Callable[[], object]) -> int:
    """Begin an outage (``begin``) and return the downloads in flight at its onset: those the
    origin was answering just before it began or just after. One look before it, through
    every worker's connections (``Fleet.in_flight``, slow on a loaded machine), missed a
    download that started meanwhile (a second child starting its first asset as the store
    filled up): its bytes were refused and fetched again, one fetch more than counted."""
    before = set(dict(fleet.origin.active).items())
    begin()
    return len(before | set(dict(fleet.origin.active).items()))


def redis_restart(sig: signal.Signals, down: float = 4.0) -> Fault:
    """Stop redis-server with ``sig``, leave it down ``down`` seconds, start it again on the
    same port and AOF directory."""
    def fault(fleet: Fleet) -> int:
        fleet.busy_worker()
        in_flight = fleet.in_flight()
        fleet.redis.blink(sig, down)
        return in_flight
    return fault


def s3_outage(seconds: float = 20.0) -> Fault:
    """The S3 endpoint refuses and resets connections for ``seconds`` (moto keeps its data)."""
    def fault(fleet: Fleet) -> int:
        fleet.busy_worker()
        in_flight = at_onset(fleet, fleet.proxy.cut)
        time.sleep(seconds)
        fleet.proxy.restore()
        return in_flight
    return fault


def store_full(fs: SmallFs, seconds: float = 5.0) -> Fault:
    """The store's file system is left with no room (it shrinks to what it holds) for
    ``seconds``, then gets its room back."""
    def fault(fleet: Fleet) -> int:
        fleet.busy_worker()
        size = fs.size
        in_flight = at_onset(fleet, fs.fill)
        time.sleep(seconds)
        fs.resize(size)
        return in_flight
    return fault


def store_read_only(fs: SmallFs, seconds: float = 5.0) -> Fault:
    """The store's file system is remounted read-only for ``seconds``, then writable again."""
    def fault(fleet: Fleet) -> int:
        fleet.busy_worker()
        in_flight = at_onset(fleet, fs.read_only)
        time.sleep(seconds)
        fs.writable()
        return in_flight
    return fault


def redis_wipe(down: float = 2.0) -> Fault:
    """Redis loses everything (SIGKILL, its AOF deleted) and is back empty ``down`` seconds
    later: only the enqueuer still knows the batch (the row runs ``enqueue --wait``)."""
    def fault(fleet: Fleet) -> int:
        fleet.busy_worker()
        in_flight = fleet.in_flight()
        fleet.redis_wipe_restart(down)
        return in_flight
    return fault


def no_fault(fleet: Fleet) -> int:
    return 0


def hostile_assets(origin: OriginServer, name: str, max_redirects: int) -> list[Served]:
    """One of each hostile response, with the outcome a correct run ends with: 429 and 503
    with Retry-After then the media, a slow drip, a truncated body then the whole one
    (archived); an HTML page with status 200 (not-media), a redirect loop (redirects, after
    following it ``max_redirects`` times), a stacked gzip bomb (too-large) and an image
    declaring 100,000 x 100,000 pixels (archived as is)."""
    body = {k: media_body(i, 20_000) for i, k in enumerate(("429", "503", "slow", "truncated"))}
    loop = f"/{name}/loop_1024.jpg"
    cases: list[tuple[str, object, bytes, str, int]] = [
        ("429", hostile.retry_after(429, 1, body["429"]), body["429"], "archived", 2),
        ("503", hostile.retry_after(503, 1, body["503"]), body["503"], "archived", 2),
        ("slow", hostile.slow(body["slow"], 2.0), body["slow"], "archived", 1),
        ("truncated", hostile.truncated_then(body["truncated"]), body["truncated"],
         "archived", 2),
        ("html", hostile.html_200(), media.HTML_ERROR_PAGE, "not-media", 1),
        ("loop", hostile.redirect_loop(loop), b"", "redirects", 1 + max_redirects),
        ("stacked", hostile.stacked_gzip_bomb(), b"", "too-large", 1),
        ("huge", hostile.as_image(hostile.huge_png()), hostile.huge_png(), "archived", 1),
    ]
    out = []
    for case, response, data, expect, fetches in cases:
        path = f"/{name}/{case}_1024.jpg"
        origin.add(path, response)  # type: ignore[arg-type]
        out.append(Served(path, data, expect, fetches))
    return out


@dataclass
class Row:
    """One fault of the matrix: its name, what to do before the batch, the fault."""

    name: str
    fault: Fault
    prepare: Callable[[], None] | None = None
    after: Callable[[Fleet], None] | None = None  # restore the fleet for the next row
    # Enqueue as ``archiver enqueue --wait`` does (it waits for the batch, sweeps it and
    # publishes again what Redis lost), not by a send that returns at once.
    wait: bool = False


def run(fleet: Fleet, served: list[Served], row: Row, *, timeout: float = 60.0,
        start_after: int = 1) -> Outcome:
    """Enqueue ``served``, inject the row's fault once ``start_after`` of them have been
    requested from the origin, clear it, and measure the outcome from that moment."""
    with fleet.store() as store:
        before = media_keys(store)
    if row.prepare is not None:
        row.prepare()
    # A row that waits enqueues as ``enqueue --wait`` does: a thread then sweeps the batch and
    # publishes again what a Redis that lost its data lost (``Fleet.enqueue(watch=True)``).
    fleet.enqueue(served, row.name.replace(" ", "-"), watch=row.wait)
    deadline = time.monotonic() + 60
    while sum(fleet.origin.hits[s.path] for s in served) < start_after:
        if time.monotonic() > deadline:
            raise AssertionError("the fleet did not start on the batch")
        time.sleep(0.05)
    in_flight = row.fault(fleet)
    cleared = time.monotonic()
    try:
        with fleet.store() as store:
            return converge(store, served, fleet.origin, fault=row.name, since=cleared,
                            timeout=timeout, in_flight=in_flight, before=before)
    finally:
        if row.after is not None:
            row.after(fleet)
