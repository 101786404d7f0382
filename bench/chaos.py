"""Chaos: the fault matrix of issue 10 at fleet size, measured as an operator would see it.

    python -m bench.chaos [--assets 250] [--only NAME,...] [--wait 120] [--out bench/RESULTS.md]

Two ``celery worker`` processes (prefork, 2 children each) against a private redis-server with
AOF, moto's S3 server behind a TCP proxy that can cut it off, and the local origin
(``tests.support``: the same harness as ``pytest -m faults``, which runs the same faults on a
few assets). For each fault, a fresh batch of ``--assets`` assets is enqueued, the fault is
injected once a third of them have been requested (a kill lands mid-download), then cleared;
the manifest and every stored object are then checked against the origin's bytes:

- lost: assets without the outcome they should have ``--wait`` s after the fault cleared;
- duplicate fetches: origin requests beyond one per asset (a 429 then the media counts one),
  against the downloads in flight at the fault (the killed process's, or the fleet's for an
  outage or a store fault: the most the fault may cost);
- wrong bytes: records or objects whose bytes are not the origin's; objects twice;
- seconds from the fault cleared to the last asset's final record;
- manual steps: when assets are lost, the re-enqueues (``archiver enqueue`` of the same
  articles, at most 2) it took to get them archived.

The table goes to the ``chaos`` block of bench/RESULTS.md. The local-store rows mount a tmpfs
(run as root, as CI does). Interrupted (Ctrl-C, SIGTERM, SIGHUP), it stops every process it
started and unmounts the tmpfs before it exits; ``--logs DIR`` keeps the workers' logs of the
rows that do not hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from archiver.manifest.records import Records
from bench.report import load_text, machine, put_section
from tests.support import chaos
from tests.support.faults import small_fs
from tests.support.fleet import Fleet, Outcome, Served, converge, pending, serve
from tests.support.origin import OriginServer
from tests.support.services import moto_s3

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
SIZE = 20_000  # random bytes per asset (behind a small JPEG)
SECONDS = 0.4  # per download, dripped: a kill lands mid-download


def s3_rows(outage: float) -> list[chaos.Row]:
    return [
        chaos.Row("none (baseline)", chaos.no_fault),
        chaos.Row("SIGKILL prefork child", chaos.kill_child),
        chaos.Row("SIGKILL worker main process", chaos.kill_main, after=chaos.replace_dead),
        chaos.Row("Redis SIGTERM, 4 s down, restart", chaos.redis_restart(signal.SIGTERM)),
        chaos.Row("Redis SIGKILL, 4 s down, restart", chaos.redis_restart(signal.SIGKILL)),
        chaos.Row("Redis loses its data (SIGKILL, AOF deleted, back empty 2 s later; "
                  "enqueue --wait)", chaos.redis_wipe(2.0), wait=True),
        chaos.Row(f"S3 unreachable {outage:g} s", chaos.s3_outage(outage)),
        chaos.Row("hostile origin (429, 503, slow, truncated, HTML 200, redirect loop, "
                  "stacked gzip, huge image)", chaos.no_fault),
    ]


def measure(fleet: Fleet, served: list[Served], row: chaos.Row, wait: float,
            logs: Path | None = None) -> Outcome:
    """One row: the outcome, then the re-enqueues an operator would need (manual steps)."""
    print(f"== {row.name}: {len(served)} assets", flush=True)
    out = chaos.run(fleet, served, row, timeout=wait, start_after=len(served) // 3)
    if logs is not None and out.problems():
        keep_logs(fleet, served, row, out, logs)
    steps = 0
    lost = out.lost
    while lost and steps < 2:
        steps += 1
        fleet.enqueue(served, f"again{steps}-{row.name[:12].replace(' ', '-')}")
        with fleet.store() as store:
            lost = converge(store, served, fleet.origin, fault=row.name, since=time.monotonic(),
                            timeout=wait).lost
    out.manual_steps = steps if not lost else -1
    print(f"   {out.row()}", flush=True)
    return out


def keep_logs(fleet: Fleet, served: list[Served], row: chaos.Row, out: Outcome,
              folder: Path) -> None:
    """The workers' logs and what went wrong, for a row that does not hold."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "-" for c in row.name.lower())[:40]
    with fleet.store() as store:
        records = Records(store)
        lost = []
        for s in pending(store, served):
            record = records.load(s.id)
            got = (record.status, record.error) if record is not None else "no record"
            lost.append(f"{s.path} (asset {s.id}, expected {s.expect}): {got}")
    path = folder / f"{name}.log"
    path.write_text("\n".join([*out.problems(), "not ended right:", *lost, fleet.logs()]))
    print(f"   logs of the row in {path}", flush=True)


def batch(origin: OriginServer, row: chaos.Row, n: int, max_redirects: int) -> list[Served]:
    name = "".join(c if c.isalnum() else "-" for c in row.name.lower())[:24]
    if row.name.startswith("hostile"):
        bad = chaos.hostile_assets(origin, name + "-h", max_redirects)
        return serve(origin, name, n - len(bad), SIZE, SECONDS) + bad
    return serve(origin, name, n, SIZE, SECONDS)


LOCAL_ROWS = ("local store full", "local store read-only")


def run_matrix(args: argparse.Namespace, work: Path) -> list[Outcome]:
    wanted = set(args.only.split(",")) if args.only else None

    def picked(name: str) -> bool:
        return wanted is None or any(w.lower() in name.lower() for w in wanted)

    outcomes: list[Outcome] = []
    origin = OriginServer().start()
    try:
        with moto_s3() as endpoint:
            rows = [row for row in s3_rows(args.outage) if picked(row.name)]
            if rows:
                outcomes += s3_matrix(args, work, origin, endpoint, rows)
            if any(picked(name) for name in LOCAL_ROWS):
                outcomes += local_matrix(args, work, origin, endpoint, picked)
    finally:
        origin.stop()
    return outcomes


def s3_matrix(args: argparse.Namespace, work: Path, origin: OriginServer, endpoint: str,
              rows: list[chaos.Row]) -> list[Outcome]:
    outcomes = []
    fleet = Fleet(work / "s3", origin, endpoint)
    try:
        fleet.start_workers(2)
        for row in rows:
            served = batch(origin, row, args.assets, fleet.settings.fetch.max_redirects)
            outcomes.append(measure(fleet, served, row, args.wait, args.logs))
    finally:
        fleet.close()
    return outcomes


def local_matrix(args: argparse.Namespace, work: Path, origin: OriginServer, endpoint: str,
                 picked: Callable[[str], bool]) -> list[Outcome]:
    """The local-store rows, on a tmpfs that fills up or turns read-only."""
    outcomes = []
    with small_fs(work / "fs", 256 * MiB) as fs:
        fleet = Fleet(work / "local", origin, endpoint, store=str(fs.path / "archive"))
        try:
            fleet.start_workers(2)
            rows = [chaos.Row(LOCAL_ROWS[0], chaos.store_full(fs, seconds=10)),
                    chaos.Row(LOCAL_ROWS[1], chaos.store_read_only(fs, seconds=10))]
            for row in rows:
                if picked(row.name):
                    served = serve(origin, row.name.replace(" ", "-"), args.assets, SIZE,
                                   SECONDS)
                    outcomes.append(measure(fleet, served, row, args.wait, args.logs))
        finally:
            fleet.close()
    return outcomes


def table(outcomes: list[Outcome], args: argparse.Namespace, before: tuple[float, ...],
          after: tuple[float, ...], elapsed: float) -> list[str]:
    lines = [
        "## Chaos: the fault matrix of issue 10 at fleet size", "",
        f"- command: `python -m bench.chaos --assets {args.assets} --wait {args.wait:g}"
        f"{' --only ' + args.only if args.only else ''}` ({elapsed / 60:.1f} min)",
        "- fleet: 2 `celery worker` processes (prefork, 2 children each), default settings; "
        "private redis-server with AOF (everysec), restarted on its port and AOF directory; "
        "moto's S3 server behind a TCP proxy cut off for the outage (refused and reset, moto "
        f"keeps its data); the local origin, {SIZE // 1000} KB per asset dripped over "
        f"{SECONDS:g} s; local-store rows on a tmpfs",
        f"- machine: {machine()}; load average (1, 5, 15 min) before {load_text(before)}, after "
        f"{load_text(after)} (2 shared cores: above 2 means a busy machine)",
        "- each fault is injected once a third of the batch has been requested; seconds are "
        "from the fault cleared to the last asset's final record; lost is counted "
        f"{args.wait:g} s after the fault cleared, before any manual step; duplicate fetches "
        "are origin requests beyond one correct run's (a 429 then the media is one), with "
        "the downloads in flight at the fault in brackets (the killed process's for a kill, "
        "the fleet's for an outage or a store fault: the most the fault may cost); "
        "manual steps are the re-enqueues it then took to archive the lost (-1: still lost "
        "after 2)",
        "- acceptance (issue 10): 0 lost, 0 wrong bytes, 0 objects twice, 0 manual steps, "
        "duplicate fetches <= in flight at the fault, converged within 60 s",
        "",
        "| fault | assets expected | archived | lost | duplicate fetches (in flight) | "
        "wrong bytes | objects twice | s to converge | manual steps | holds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        seconds = f"{o.seconds:.1f}" if o.seconds is not None else f"> {args.wait:g}"
        holds = "yes" if not o.problems() else "**no**"
        lines.append(f"| {o.fault} | {o.expected} | {o.archived} | {o.lost} | "
                     f"{o.duplicate_fetches} ({o.in_flight}) | {o.wrong_bytes} | "
                     f"{o.stored_twice} | {seconds} | {o.manual_steps} | {holds} |")
    return lines


class Interrupted(SystemExit):
    """SIGTERM or SIGHUP: unwind through every ``finally`` (workers, redis, the proxy, the
    tmpfs) as Ctrl-C does, instead of dying with the fleet left running."""


def _interrupted(signum: int, _frame: object) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second one does not cut
        signal.signal(sig, signal.SIG_IGN)                      # the clean-up short
    raise Interrupted(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=250, help="assets per fault")
    parser.add_argument("--only", default="", help="comma-separated parts of row names")
    parser.add_argument("--wait", type=float, default=120.0,
                        help="seconds after the fault cleared before assets count as lost")
    parser.add_argument("--outage", type=float, default=20.0, help="S3 outage (s)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--logs", type=Path, default=None,
                        help="keep the workers' logs of each row that does not hold here")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    work = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    before = os.getloadavg()
    started = time.monotonic()
    try:
        outcomes = run_matrix(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = table(outcomes, args, before, os.getloadavg(), time.monotonic() - started)
    print("\n".join(lines))
    put_section(args.out, "chaos", lines)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
