"""Several runner processes for a large plan: ``archiver archive`` on more than one core.

The in-process runner (``runner.run``) is one process whose threads share one GIL: a plan of
many small assets is bound by one core's CPU. With ``runner.processes`` above one, the plan's
new assets are archived by that many child processes, forked from this one before it starts
any thread (planning leaves none running; progress bars, the segment writer and the fetchers
start after the fork), each with its share of ``runner.concurrency`` threads and of every
host's cap and rate (``limits.share``: the shares add up to the cap, never more).

Work: the parent hands out a few asset indices at a time to a child that asks (a pipe each),
so a child held up by a slow host takes fewer and no process idles while work is queued.
Records: each child opens its own store, fetchers and segment log (a writer of its own: its
own segment names and marker) and sends each record to the parent once it is durable, as the
single-process runner reports it; the parent counts it, calls ``on_record`` and folds it into
its cached index rows (``Index.absorb``), so the article manifests and the index it writes at
the end are those of a single-process run.

Faults: a child that dies (SIGKILL, OOM) loses only the records it had not sent; their assets
go back to the queue for the others (an asset out in ``DEATHS`` dead children fails with
``redelivered`` instead of killing another), and when no child is left the parent archives
the rest itself. A store that cannot take writes (StoreFull, StoreReadOnly) stops the run: no
more work is handed out. An error a child raises (a record it could not save) is raised by the
parent once the others have stopped. KeyboardInterrupt in the parent (Ctrl-C) sends SIGTERM to
the children, which stop as a single-process run does; a parent killed outright leaves
children that stop once they ask for work (the pipe is closed).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import ExitStack, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any

from archiver.drivers.runner import STOPS_THE_RUN, RunSummary, _stop_error, run
from archiver.errors import Redelivered, StoreError
from archiver.fetch.limits import LocalHostLimiter, share
from archiver.manifest import Manifest
from archiver.models import Asset, Record
from archiver.pipeline import build_context, failure_record
from archiver.settings import Settings

if TYPE_CHECKING:  # multiprocessing is loaded when children are forked
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from archiver.drivers.coordination import Claims
    from archiver.store.base import Store

log = logging.getLogger(__name__)

MIN_SHARE = 64  # new assets per process, at least, for "auto" to start another one
BATCH = 4  # asset indices handed out at once, at most
DEATHS = 2  # dead children an asset may have been out in before it fails
ABSORB = 1024  # records heard before they are folded into the parent's cached index rows
STOP_WAIT = 60.0  # seconds children get to stop after SIGTERM before they are killed


def processes_for(settings: Settings, todo: int) -> int:
    """How many processes archive a plan of ``todo`` new assets: ``runner.processes``, where
    "auto" is the CPUs this process may run on, one per ``MIN_SHARE`` new assets, and one
    while this process runs other threads (forking would copy their locks, maybe held). Never
    more than the concurrency, the assets, or the smallest per-host cap (each process gets
    its share of every host's cap, at least one)."""
    setting = settings.runner.processes
    if setting == "auto" and (threading.active_count() > 1 or not hasattr(os, "fork")):
        return 1
    wanted = min(_cpus(), todo // MIN_SHARE) if setting == "auto" else setting
    fetch = settings.fetch
    caps = [fetch.per_host_concurrency,
            *(rule.max_concurrency for rule in fetch.hosts if rule.max_concurrency)]
    return max(1, min(wanted, settings.runner.concurrency, todo, *caps))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


Report = Callable[[Record], None]


class Processes:
    """The children archiving ``todo``: forked by ``__enter__`` (or ``start``), fed and heard
    by ``run``; leaving the block stops any child still running."""

    def __init__(self, todo: Sequence[Asset], settings: Settings, store: Store, count: int, *,
                 recorded: Container[str] = frozenset(), claims: bool = False) -> None:
        self.todo = todo
        self.settings = settings
        self.store = store
        self.count = count
        self.recorded = recorded
        self.claims = claims
        self.children: dict[Connection, BaseProcess] = {}
        self.out: dict[Connection, set[int]] = {}  # asset indices handed out, not reported
        self.queue: deque[int] = deque(range(len(todo)))
        self.index = {asset.id: n for n, asset in enumerate(todo)}
        self.deaths: Counter[int] = Counter()
        self.lost: list[int] = []  # out in DEATHS dead children: failed
        self.died = 0  # children that ended with assets out or an error exit
        self.unindexed = False  # records the cached index rows did not absorb
        self.raised: BaseException | None = None

    def __enter__(self) -> Processes:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        import multiprocessing as mp

        context = mp.get_context("fork")
        # What exists now is the children's too: the collector leaves it alone there, so
        # that its passes do not copy every page a child inherited.
        gc.freeze()
        try:
            self._fork(context)
        finally:
            gc.unfreeze()

    def _fork(self, context: Any) -> None:
        for part in range(self.count):
            mine, theirs = context.Pipe()
            proc = context.Process(
                target=_child, name=f"archiver-runner-{part}", daemon=True,
                args=(theirs, [*self.children, mine], part, self.count, self))
            proc.start()
            theirs.close()
            self.children[mine] = proc
            self.out[mine] = set()

    def stop(self) -> None:
        """SIGTERM to every child still running (they stop as a single-process run does on
        Ctrl-C), then wait for them; killed after ``STOP_WAIT`` seconds."""
        procs = list(self.children.values())
        for conn in list(self.children):
            conn.close()
        self.children.clear()
        for proc in procs:
            with suppress(OSError):
                proc.terminate()
        deadline = time.monotonic() + STOP_WAIT
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()

    def run(self, manifest: Manifest, store: Store, *, on_record: Report | None = None,
            claims: Claims | None = None) -> RunSummary:
        """Hand out the work and gather the records until every asset is reported (see the
        module docstring); the parent's ``manifest`` and ``store`` save what it saves itself
        (assets lost with dead children, the rest when none is left)."""
        from multiprocessing.connection import Connection, wait

        summary = RunSummary()
        started = time.monotonic()

        def report(record: Record) -> None:
            summary.add(record)
            if summary.stopped is None:
                summary.stopped = _stop_error(record)
            if on_record is not None:
                on_record(record)

        idle: list[Connection] = []  # children that finished their work and wait for more
        # Records by segment, folded into the cached index rows a thousand at a time (each
        # fold copies the rows).
        heard: dict[str, list[Record]] = {}
        while self.children:
            for conn in wait(list(self.children)):
                assert isinstance(conn, Connection)
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    self._ended(conn)
                    continue
                if message[0] == "rec":
                    _, record, segment = message
                    self.out[conn].discard(self.index.get(record.id, -1))
                    if segment is not None:
                        heard.setdefault(segment, []).append(record)
                    else:
                        self.unindexed = True
                    report(record)
                elif message[0] == "want":
                    self._answer(conn, bool(message[1]), idle, summary)
                elif message[0] == "raised":
                    self.raised = self.raised or message[1]
            if sum(map(len, heard.values())) >= ABSORB:
                _absorb(manifest, heard)
            for conn in list(idle):
                self._answer(conn, True, idle, summary)
        _absorb(manifest, heard)
        self._finish(manifest, store, report, claims, summary)
        if self.raised is not None:
            raise self.raised
        if summary.stopped is not None:
            summary.not_attempted = len(self.todo) - summary.total
        summary.elapsed = time.monotonic() - started
        return summary

    def _answer(self, conn: Connection, idle: bool, waiting: list[Connection],
                summary: RunSummary) -> None:
        """Work for a child that asked: a few indices; [] (nothing now: finish yours) when
        the queue is empty; None (done) when every asset is reported or the run stops. An
        idle child waits while others have assets out: a dead one's come back."""
        if conn in waiting:
            waiting.remove(conn)
        if conn not in self.children:
            return
        answer: list[int] | None
        if summary.stopped is not None or self.raised is not None:
            answer = None
        elif self.queue:
            size = min(BATCH, max(1, len(self.queue) // (2 * len(self.children))))
            answer = [self.queue.popleft() for _ in range(min(size, len(self.queue)))]
            self.out[conn].update(answer)
        elif not idle:
            answer = []
        elif any(self.out.values()):
            waiting.append(conn)
            return
        else:
            answer = None
        try:
            conn.send(answer)
        except OSError:  # it died meanwhile: its EOF is next
            pass

    def _ended(self, conn: Connection) -> None:
        """A child's pipe closed: it exited, or died. What it had out goes back to the queue."""
        proc = self.children.pop(conn)
        out = self.out.pop(conn)
        conn.close()
        proc.join(STOP_WAIT)
        if not out and proc.exitcode == 0:
            return
        self.died += 1
        self.unindexed = True  # it may have written segments it did not report
        log.warning("runner process %s ended (exit %s) with %d assets not reported; they go "
                    "to the other processes", proc.pid, proc.exitcode, len(out))
        for n in sorted(out, reverse=True):
            self.deaths[n] += 1
            if self.deaths[n] >= DEATHS:
                self.lost.append(n)
            else:
                self.queue.appendleft(n)

    def _finish(self, manifest: Manifest, store: Store, report: Report,
                claims: Claims | None, summary: RunSummary) -> None:
        """After the children: fail the assets lost with them, archive what no child is left
        for (in this process), and make the cached index see what it did not absorb."""
        if self.lost:
            manifest.invalidate()  # the dead children's segments: a record may be there
        lost = [self._lost(manifest, self.todo[n]) for n in self.lost]
        if manifest.log is not None:
            manifest.log.flush()  # reported once durable
        for record in lost:
            report(record)
        if self.queue and summary.stopped is None and self.raised is None:
            log.warning("no runner process left: archiving %d assets in this one",
                        len(self.queue))
            rest = [self.todo[n] for n in self.queue]
            self.queue.clear()
            with build_context(self.settings, store, manifest=manifest) as ctx:
                inner = run(rest, ctx, on_record=report, recorded=self.recorded, claims=claims)
            summary.stopped = summary.stopped or inner.stopped
        if self.unindexed:
            manifest.invalidate()


    def _lost(self, manifest: Manifest, asset: Asset) -> Record:
        """The record of an asset out in ``DEATHS`` dead children: the archived one a child
        wrote before it died, else a failure."""
        stored = manifest.load(asset.id)
        if stored is not None and stored.status == "archived":
            return stored
        error = Redelivered(f"out in {DEATHS} runner processes that died")
        return manifest.save(failure_record(asset, error), fresh=asset.id not in self.recorded)


def _absorb(manifest: Manifest, heard: dict[str, list[Record]]) -> None:
    for segment, records in heard.items():
        manifest.index.absorb(segment, records)
    heard.clear()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _child(conn: Connection, parents: list[Connection], part: int, parts: int,
           plan: Processes) -> None:
    """A child's life: its own store, fetchers, limiter share and segment log; archive what
    the parent hands out, send each record once durable, until the parent says done."""
    for end in parents:  # the parent's ends, its own included: EOF once the parent is gone
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, and sends SIGTERM
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _archive(conn, part, parts, plan)
    except KeyboardInterrupt:
        os._exit(130)
    except BaseException as exc:
        with suppress(Exception):
            conn.send(("raised", _portable(exc)))
        raise


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (the parent raises it), else a StoreError saying it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own bytes, just made)
    except Exception:
        return StoreError(f"a runner process failed: {type(exc).__name__}: {exc}")
    return exc


def _archive(conn: Connection, part: int, parts: int, plan: Processes) -> None:
    settings = plan.settings
    segments: dict[str, str] = {}  # asset id -> the segment its last record went into

    def ask(idle: bool) -> list[int] | None:
        try:
            conn.send(("want", idle))
            answer: list[int] | None = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return None
        return answer

    def more() -> Iterator[Asset]:
        while batch := ask(False):
            yield from (plan.todo[n] for n in batch)

    def send(record: Record) -> None:
        with suppress(OSError):
            conn.send(("rec", record, segments.pop(record.id, None)))

    store = plan.store
    # The parent's store, its connections closed (this process's copies of them: an S3
    # client's pool) and opened again as needed; its client, set up once, is shared.
    store.close()
    with store, ExitStack() as stack:
        manifest = Manifest(store)
        claims = None
        if plan.claims:
            from archiver.drivers.job import fleet_claims

            claims = stack.enter_context(fleet_claims(settings))[0]
        limiter = LocalHostLimiter(settings, part=(part, parts))
        ctx = stack.enter_context(build_context(settings, store, manifest=manifest,
                                                limiter=limiter))
        if claims is None:
            with suppress(*STOPS_THE_RUN):  # no writer's marker: records one file each
                log = stack.enter_context(manifest.batched())
                absorb = log.on_written

                def written(name: str, records: list[Record]) -> None:
                    for record in records:
                        segments[record.id] = name
                    if absorb is not None:
                        absorb(name, records)

                log.on_written = written
        threads = share(settings.runner.concurrency, part, parts)
        batch = ask(True)
        while batch is not None:
            first = [plan.todo[n] for n in batch]
            run(_chain(first, more()), ctx, concurrency=threads, on_record=send,
                recorded=plan.recorded, claims=claims, backlog=threads + BATCH)
            batch = ask(True)


def _chain(first: list[Asset], rest: Iterator[Asset]) -> Iterator[Asset]:
    yield from first
    yield from rest

