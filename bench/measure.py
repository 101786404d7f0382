"""Run a function or a command in a child process and measure it: wall time, CPU time (user +
system, the child and what it waited for) and peak RSS (the child's own ``VmHWM`` and a psutil
sample of the whole process tree every 20 ms, whichever is higher).

A child process per measurement keeps figures honest: nothing the harness imported or allocated
counts, and every run starts cold like a fresh ``archiver archive`` would.
"""

from __future__ import annotations

import compileall
import functools
import multiprocessing as mp
import os
import resource
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

import psutil  # type: ignore[import-untyped]

MB = 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Measurement:
    """One measured run. ``items`` are assets (or articles for a scan), ``bytes`` moved."""

    label: str
    wall: float
    cpu: float
    peak_rss: int
    items: int = 0
    bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Items per second of wall time."""
        return self.items / self.wall if self.wall > 0 else 0.0

    @property
    def mb_s(self) -> float:
        return self.bytes / MB / self.wall if self.wall > 0 else 0.0

    def with_counts(self, items: int, nbytes: int, **extra: Any) -> Measurement:
        return replace(self, items=items, bytes=nbytes, extra={**self.extra, **extra})

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3),
                "peak_rss_mb": round(self.peak_rss / MB, 1), "items": self.items,
                "bytes": self.bytes, "rate": round(self.rate, 1), "mb_s": round(self.mb_s, 2),
                **self.extra}

    def line(self, unit: str = "assets") -> str:
        return (f"{self.label}: {self.items} {unit} in {self.wall:.2f} s = {self.rate:.1f} "
                f"{unit}/s, {self.mb_s:.1f} MB/s, CPU {self.cpu:.2f} s, peak RSS "
                f"{self.peak_rss / MB:.0f} MB")


def combine(label: str, *parts: Measurement) -> Measurement:
    """Steps run one after the other (wget, then aws s3 sync): times add, peak is the max."""
    return Measurement(label, sum(p.wall for p in parts), sum(p.cpu for p in parts),
                       max(p.peak_rss for p in parts), extra={
                           "steps": {p.label: round(p.wall, 3) for p in parts}})


class _TreeSampler:
    """Peak of the summed RSS of a process and its descendants, sampled every 20 ms, and of
    their summed PSS (``peak_pss``: a page shared by n processes counts 1/n in each, so forked
    processes sharing their parent's pages count them once, where RSS counts them in each)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            started = time.thread_time()  # the sampler's own CPU, kernel time included
            total = pss = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        total += proc.memory_info().rss
                        pss += _pss(proc)
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, pss)
            # Every 20 ms, or less often when a sample is dear: the kernel walks a process's
            # page tables for smaps_rollup (20 ms for 1.2 GB, holding its mmap lock), and a
            # sampler reading it back to back took half a core from a large measured job.
            self._stop.wait(max(0.02, 4 * (time.thread_time() - started)))


def _pss(proc: Any) -> int:
    """The process's PSS from /proc/<pid>/smaps_rollup (0 where there is none)."""
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _child(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    wall = time.perf_counter() - started
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    conn.send(("ok", (result, wall, cpu, vm_hwm())))


def vm_hwm() -> int:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries the forking parent's
    high-water mark across fork and exec, so every child would report at least the harness's
    size."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):  # noqa: SIM115
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@functools.cache
def compiled() -> None:
    """Byte-code for archiver's modules (and the harness's) in their ``__pycache__``, as pip
    leaves an installed package (a wheel, the Docker image: pip compiles at install time).
    Under ``PYTHONDONTWRITEBYTECODE`` (set in this environment and in the image) an editable
    checkout is never cached, so every measured child compiled archiver's ~110 modules from
    source: 0.2-0.3 s of its CPU and wall that no installed archiver pays."""
    for package in ("archiver", "bench"):
        compileall.compile_dir(os.path.join(ROOT, package), quiet=1)


def measure_call(label: str, fn: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> tuple[Any, Measurement]:
    """Run ``fn(*args, **kwargs)`` in a fresh (spawned) process; ``fn`` and its arguments must
    pickle. Returns its result and the measurement (wall time as seen inside the child, so the
    interpreter's start-up is not counted). Raises RuntimeError with the child's traceback.
    The modules are byte-compiled first (``compiled``)."""
    compiled()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs))
    proc.start()
    child.close()
    assert proc.pid is not None
    with _TreeSampler(proc.pid) as sampler:
        try:
            status, payload = parent.recv()
        except EOFError:
            status, payload = "error", f"child exited with {proc.exitcode}"
        proc.join()
    parent.close()
    if status != "ok":
        raise RuntimeError(f"{label} failed in its child process:\n{payload}")
    result, wall, cpu, maxrss = payload
    return result, Measurement(label, wall, cpu, max(maxrss, sampler.peak),
                               extra={"peak_pss": sampler.peak_pss})


def measure_cmd(label: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None, check: bool = True) -> Measurement:
    """Run a command, measuring wall time, CPU of it and its descendants (``wait4``) and the
    peak RSS of its whole tree. Output goes to a log kept in ``extra['output']`` (tail)."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: proc.stdout.read(65536) if proc.stdout else b"", b"")), daemon=True)
    reader.start()
    with _TreeSampler(proc.pid) as sampler:
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if proc.stdout:
        proc.stdout.close()
    output = b"".join(chunks).decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{label}: {argv[0]} exited {proc.returncode}:\n{output[-3000:]}")
    # Peak RSS from the samples only: wait4's ru_maxrss starts at the harness's own size
    # (inherited across fork and exec), which would hide a small tool like wget.
    return Measurement(label, wall, usage.ru_utime + usage.ru_stime, sampler.peak,
                       extra={"exit": proc.returncode, "output": output[-2000:],
                              "peak_pss": sampler.peak_pss})
