"""Where each millisecond of an archiver run goes, per asset: py-spy samples of the job.

    python -m bench.profile [--store folder s3] [--articles 100] [--concurrency 32]
                            [--rate 200] [--out bench/RESULTS.md]

The workload and servers are bench.compare's (ZAKER posts, the local internet with 50 ms per
response, moto's S3 server). For each store, ``archive_job`` runs twice in a child process under
``py-spy record`` three times: the samples where a thread is busy (on a CPU or in a blocking
system call such as fsync), the samples of the thread holding the GIL (Python's own CPU), and
every thread at every tick (``--idle``: where an archiving thread's wall time goes, waiting
included). Each sample is put in one category by the innermost
frame that a rule recognises (the source line is read, so ``os.fsync`` inside ``_write`` is told
from ``os.link`` beside it), and the table gives thread-milliseconds per archived asset. Writes
the tables into RESULTS.md between ``<!-- profile -->`` markers. Needs py-spy (``pip install
py-spy``) and the right to trace a child (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import json
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.archive import ROOT, s3_service
from bench.baselines import tool
from bench.origin import LocalInternet, Options
from bench.report import put_section
from bench.workload import zaker_articles

HERE = Path(__file__).resolve().parent

# (category, file fragment, function name or "", source-line pattern or ""), tried in order on
# each frame from the innermost outwards; the first frame that matches a rule decides.
RULES: tuple[tuple[str, str, str, str], ...] = (
    ("store: syncfs / fsync (commit cycle)", "store/commit.py", "_syncfs|sync|fsync_dir|run", ""),
    ("store: link / rename / unlink", "store/commit.py", "place|link_exclusive|_discard", ""),
    ("store: commit cycle (other)", "store/commit.py", "", ""),
    ("store: fsync of the object", "store/local.py", "", r"os\.fsync"),
    ("store: fsync of the directory", "store/local.py", "_fsync_dir", ""),
    ("store: fsync of the directory", "store/local.py", "", r"_fsync_dir\("),
    ("store: mkstemp", "tempfile.py", "", ""),
    ("store: link / rename / unlink", "store/local.py", "", r"os\.(link|replace|unlink)|"
     r"_link_exclusive\("),
    ("store: mkdir", "pathlib.py", "mkdir", ""),
    ("store: stat / exists", "pathlib.py", "exists|is_file|stat", ""),
    ("store: open / write / close", "store/local.py", "", r"fdopen|_copy\(|open\("),
    ("store: delete", "store/local.py", "LocalStore.delete", ""),
    ("store: list", "store/local.py", "_walk|LocalStore.list", ""),
    ("store: read", "store/local.py", "LocalStore.(get_bytes|open|head)", ""),
    ("store: key checks", "store/keys.py", "", ""),
    ("store: other", "store/local.py", "", ""),
    ("hash + spool (sha256, temporary file)", "fetch/spool.py", "", ""),
    ("Pillow (image facts)", "PIL/", "", ""),
    ("Pillow (image facts)", "fetch/facts.py", "", ""),
    ("sniff", "fetch/sniff.py", "", ""),
    ("S3: waiting for the server", "http/client.py", "", ""),
    ("S3: waiting for the server", "socket.py", "", ""),
    ("S3: waiting for the server", "urllib3/", "", ""),
    ("S3: botocore (build, sign, parse)", "botocore/", "", ""),
    ("S3: botocore (build, sign, parse)", "boto3/", "", ""),
    ("S3: archiver's S3 store", "store/s3.py", "", ""),
    ("HTTP: waiting for the origin", "httpcore/_backends/sync.py", "read|write", ""),
    ("HTTP: connect + SSRF guard", "fetch/guard.py", "", ""),
    ("HTTP: httpx / httpcore / h11", "httpcore/", "", ""),
    ("HTTP: httpx / httpcore / h11", "httpx/", "", ""),
    ("HTTP: httpx / httpcore / h11", "h11/", "", ""),
    ("HTTP: fetcher (routes, retries)", "fetch/", "", ""),
    ("manifest: JSON", "json/", "", ""),
    ("manifest: records, index, articles", "archiver/manifest", "", ""),
    ("manifest: records, index, articles", "archiver/models.py", "", ""),
    ("scan", "archiver/scan/", "", ""),
    ("scan", "bs4/", "", ""),
    ("plan", "archiver/plan.py", "", ""),
    ("logging", "logging/", "", ""),
    ("pipeline", "archiver/pipeline.py", "", ""),
    ("thread hand-offs (pool, locks)", "concurrent/futures/", "", ""),
    ("thread hand-offs (pool, locks)", "threading.py", "", ""),
    ("interpreter, imports", "<frozen importlib", "", ""),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


@dataclass(frozen=True)
class Frame:
    func: str
    file: str
    line: int

    @classmethod
    def parse(cls, text: str) -> Frame:
        match = _FRAME.match(text)
        if match is None:
            return cls(text, "", 0)
        return cls(match["func"], match["file"], int(match["line"]))

    def source(self) -> str:
        return linecache.getline(self.file, self.line) if self.file.startswith("/") else ""


# What a store call is for, by the archiver function that made it (outermost first).
PURPOSES: tuple[tuple[str, str], ...] = (
    ("write_articles", "article manifests"),
    ("build_index", "index"),
    ("Index.build", "index"),
    ("statuses", "planning"),
    ("summaries", "planning"),
    ("save", "records"),
    ("_store", "objects"),
)


# Waits recognised anywhere on the stack, before the rules (their innermost frames are locks).
WAITS = (("store: waiting for the commit cycle", "store/commit.py", "Committer.commit"),)


def categorise(stack: Sequence[Frame]) -> str:
    """The category of one sample (``stack`` from the outermost frame to the innermost)."""
    for name, fragment, func in WAITS:
        if any(fragment in frame.file and frame.func == func for frame in stack):
            return name + _purpose(stack)
    for frame in reversed(stack):
        for name, fragment, funcs, pattern in RULES:
            if fragment not in frame.file:
                continue
            if funcs and not re.fullmatch(funcs, frame.func):
                continue
            if pattern and not re.search(pattern, frame.source()):
                continue
            if name.startswith("store:"):
                return name + _purpose(stack)
            return name
    leaf = stack[-1] if stack else Frame("?", "?", 0)
    return f"other ({Path(leaf.file).name or leaf.func})"


NO_STACK = "(py-spy read no Python frame)"
# py-spy options per recording: busy threads, the thread holding the GIL, every thread.
MODES = {"busy": [], "gil": ["--gil"], "wall": ["--idle"]}


def _purpose(stack: Sequence[Frame]) -> str:
    for frame in stack:
        if "archiver/" not in frame.file:
            continue
        for func, purpose in PURPOSES:
            if frame.func.endswith(func):
                return f" ({purpose})"
    return ""


def _is_worker(stack: Sequence[Frame]) -> bool:
    """A sample of the runner's archiving threads (archive_asset or fetch_asset on the stack)."""
    return any(f.func in ("archive_asset", "fetch_asset") for f in stack)


def _in_job(stack: Sequence[Frame]) -> bool:
    """A sample of the job: the main thread inside archive_paths, or any other thread (they
    all start within it). Start-up and imports before the job are left out."""
    if not stack:
        return True
    return stack[0].func != "_run_module_as_main" or any(
        f.func == "archive_paths" for f in stack)


def summarise(raw: Path) -> tuple[Counter[str], Counter[str]]:
    """Samples per category: (all threads of the job, archiving threads only), from py-spy's
    raw (collapsed stacks) output."""
    every: Counter[str] = Counter()
    workers: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stack = [Frame.parse(part) for part in stack_text.split(";") if part.strip()]
        if not _in_job(stack):
            continue
        name = categorise(stack) if stack else NO_STACK
        every[name] += int(count)
        if _is_worker(stack):
            workers[name] += int(count)
    return every, workers


def child(argv: list[str]) -> None:
    """Run archive_job with JSON arguments (under py-spy), its result into a file."""
    from bench.archive import archive_job

    job, result = argv
    Path(result).write_text(json.dumps(archive_job(**json.loads(job))), encoding="utf-8")


def record(job: dict[str, Any], out: Path, rate: int, mode: str) -> dict[str, Any]:
    """``archive_job(**job)`` in a child process under py-spy; its result."""
    spy = tool("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    argv = [spy, "record", "--format", "raw", "--rate", str(rate), "--nonblocking",
            "--full-filenames", "--output", str(out), *MODES[mode], "--",
            sys.executable, "-m", "bench.profile", "--child", json.dumps(job),
            str(out.with_suffix(".json"))]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"py-spy failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return result


def table(counts: dict[str, Counter[str]], assets: int, rate: int) -> list[str]:
    """Thread-milliseconds per archived asset: busy samples and GIL samples (all threads of
    the job) and the archiving threads' wall time (every tick), largest first."""
    ms = 1000 / rate / max(1, assets)
    busy, gil, wall = counts["busy"], counts["gil"], counts["wall"]
    names = sorted(set(busy) | set(gil) | set(wall), key=lambda n: (-busy[n], -wall[n]))
    out = ["| where | busy ms/asset | holding the GIL ms/asset | archiving threads' wall "
           "ms/asset (share) |", "|---|---|---|---|"]
    total_wall = max(1, sum(wall.values()))
    for name in names:
        if max(busy[name], gil[name]) * ms < 0.02 and wall[name] * ms < 0.2:
            continue
        out.append(f"| {name} | {busy[name] * ms:.2f} | {gil[name] * ms:.2f} | "
                   f"{wall[name] * ms:.1f} ({100 * wall[name] / total_wall:.0f}%) |")
    out.append(f"| **total** | **{sum(busy.values()) * ms:.2f}** | "
               f"**{sum(gil.values()) * ms:.2f}** | **{sum(wall.values()) * ms:.1f}** |")
    return out


def profile_store(store: str, net: LocalInternet, endpoint: str | None, paths: list[Path],
                  work: Path, concurrency: int | None, rate: int) -> list[str]:
    results = []
    counts: dict[str, Counter[str]] = {}
    for n, mode in enumerate(MODES):
        dest = f"s3://bench/profile-{n}" if store == "s3" else str(work / f"profile-{n}")
        job = {"paths": [str(p) for p in paths], "store_url": dest,
               "connect_to": net.connect_to, "concurrency": concurrency,
               "endpoint_url": endpoint if store == "s3" else None}
        out = work / f"{store}-{mode}.txt"
        results.append(record(job, out, rate, mode))
        every, workers = summarise(out)
        counts[mode] = workers if mode == "wall" else every
        shutil.rmtree(work / f"profile-{n}", ignore_errors=True)
    first = results[0]
    assets = int(first["archived"])
    j = "default settings" if concurrency is None else f"-j{concurrency}, per-host {concurrency}"
    cpu = [float(r["job_cpu"]) for r in results]
    print(f"{store}: {assets} archived, job CPU {cpu} s, phases {first['phases']}", flush=True)
    return [f"### archiver -> {store} ({j}): {assets} assets, job CPU "
            f"{1000 * min(cpu) / max(1, assets):.2f}-{1000 * max(cpu) / max(1, assets):.2f} "
            f"ms/asset over the three recordings, phases {first['phases']} (busy recording)",
            "", *table(counts, assets, rate), ""]


def main(argv: Sequence[str] | None = None) -> None:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["--child"]:
        child(args_in[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.profile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--store", nargs="+", choices=("folder", "s3"), default=["folder", "s3"])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="threads and per-host cap for the folder run (S3: defaults)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep py-spy's raw files")
    args = parser.parse_args(args_in)
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    lines = ["## Where the time goes (py-spy, per archived asset)", "",
             f"- command: `python -m bench.profile --rate {args.rate}` (bench.compare's "
             f"workload: {args.articles} ZAKER posts x 5 images on 4 hosts, "
             f"{args.latency * 1000:.0f} ms per response)",
             "- busy: samples where a thread runs or blocks in a system call (fsync counts "
             "here), all threads of the job; GIL: samples of the thread holding the GIL (at "
             "most one at a time: Python's CPU); wall: every tick of the archiving threads, "
             "waiting included (N threads spend N x wall / assets thread-ms per asset); start-up "
             "and imports before the job are left out",
             "- a sample goes to the innermost frame a rule of bench/profile.py recognises", ""]
    try:
        paths = zaker_articles(work / "articles", args.articles)
        with LocalInternet(Options(latency=args.latency)) as net, s3_service() as endpoint:
            for store in args.store:
                lines += profile_store(store, net, endpoint, paths, work,
                                       args.concurrency if store == "folder" else None,
                                       args.rate)
    finally:
        if args.keep:
            print(f"raw samples kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    put_section(args.out, "profile", lines)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
