"""Write bench/RESULTS.md (machine, versions, command, every figure, the targets) and
bench/throughput.png (assets/s against concurrency, baselines as flat lines)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from bench.run import Results

MB = 1024 * 1024


def load_text(avg: tuple[float, ...] | None = None) -> str:
    """A load average (now, when not given) as the blocks print it: ``1.15, 1.28, 3.50``."""
    return ", ".join(f"{x:.2f}" for x in (os.getloadavg() if avg is None else avg))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM")


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def versions() -> dict[str, str]:
    from bench.baselines import tool

    found: dict[str, str] = {"python": platform.python_version()}
    for dist in ("archiver", "httpx", "httpcore", "boto3", "botocore", "moto", "celery"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["wget"] = _tool_version(["wget", "--version"])
    found["aws"] = _tool_version([tool("aws") or "aws", "--version"])
    found["gallery-dl"] = _tool_version([tool("gallery-dl") or "gallery-dl", "--version"])
    return found


def _rate_of(rows: list[dict[str, Any]], label_start: str) -> float | None:
    for row in rows:
        if str(row["label"]).startswith(label_start) and row.get("rate"):
            return float(row["rate"])
    return None


def _ratio(rate: float, base: float | None) -> str:
    return f"{rate / base:.1f}x" if base else "-"


def table(rows: list[dict[str, Any]]) -> list[str]:
    naive = {"folder": _rate_of(rows, "naive sequential -> folder"),
             "s3": _rate_of(rows, "naive sequential -> s3")}
    wget = _rate_of(rows, "wget")
    out = ["| run | store | items | wall s | items/s | MB/s | CPU s | peak RSS MB | vs naive "
           "| vs wget+sync | origin requests | origin / S3 CPU % | notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        rate = float(row.get("rate", 0))
        comparable = row["kind"] in ("archiver", "baseline", "celery")
        notes = []
        if row.get("failed"):
            notes.append(f"{row['failed']} failed")
        if row.get("phases"):
            notes.append("phases " + ", ".join(f"{k} {v}s" for k, v in row["phases"].items()))
        if row.get("steps"):
            notes.append("steps " + ", ".join(f"{k.split(': ')[-1]} {v}s"
                                              for k, v in row["steps"].items()))
        if row.get("note"):
            notes.append(str(row["note"]))
        out.append(
            f"| {row['label']} | {row['store']} | {row['items']} {row['unit']} | "
            f"{row['wall_s']:.2f} | {rate:.1f} | {row.get('mb_s', 0):.1f} | {row['cpu_s']:.2f} | "
            f"{row['peak_rss_mb']:.0f} | "
            f"{_ratio(rate, naive.get(row['store'])) if comparable else '-'} | "
            f"{_ratio(rate, wget) if comparable and row['store'] == 's3' else '-'} | "
            f"{row.get('origin_requests', '-')} | {row.get('origin_cpu_pct', '-')} / "
            f"{row.get('s3_cpu_pct', '-')} | {'; '.join(notes)} |")
    return out


def targets(res: Results) -> list[str]:
    rows = res.rows
    s3 = [r for r in rows if r["kind"] == "archiver" and r["store"] == "s3"]
    best = max(s3, key=lambda r: r["rate"], default=None)
    naive = _rate_of(rows, "naive sequential -> s3")
    wget = _rate_of(rows, "wget")
    inproc = [r for r in rows if r["kind"] in ("archiver", "incremental", "big asset")]
    peak = max((r["peak_rss_mb"] for r in inproc), default=None)
    scan = _rate_of(rows, "archiver scan")
    enqueue = next((r for r in rows if r["kind"] == "enqueue"), None)
    rerun = next((r for r in rows if r["kind"] == "incremental"), None)
    lines = ["| target | measured | met |", "|---|---|---|"]

    def add(name: str, value: str, ok: bool | None) -> None:
        lines.append(f"| {name} | {value} | {'-' if ok is None else ('yes' if ok else 'no')} |")

    if best and naive:
        add("archive (S3) >= 10x naive sequential", f"{best['rate'] / naive:.1f}x "
            f"({best['label']})", best["rate"] >= 10 * naive)
    if best and wget:
        add("archive (S3) >= 2x wget -i + aws s3 sync", f"{best['rate'] / wget:.1f}x",
            best["rate"] >= 2 * wget)
    if peak is not None:
        add("peak RSS of the in-process runner < 150 MB (all runs, incl. the big asset)",
            f"{peak:.0f} MB", peak < 150)
    if scan is not None:
        add("scan >= 1,000 articles/s", f"{scan:.0f} articles/s", scan >= 1000)
    if enqueue is not None:
        add("enqueue >= 10,000 assets/s", f"{enqueue['rate']:.0f} assets/s",
            enqueue["rate"] >= 10_000)
    else:
        add("enqueue >= 10,000 assets/s", "not measured in this run (see notes)", None)
    if rerun:
        # A re-run's cost follows what changed (change markers), not the archive's size, so a
        # straight line from a small run says nothing: bench/rerun.py measures it at scale.
        add("incremental re-run < 10 s (10,000 articles / 50,000 assets, S3)",
            f"{rerun['wall_s']:.2f} s for {rerun['items']} assets here; at scale: "
            "`python -m bench.rerun` (bench/RERUN.md)" if rerun["items"] < 50_000
            else f"{rerun['wall_s']:.2f} s", rerun["wall_s"] < 10 if rerun["items"] >= 50_000
            else None)
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for store, marker in (("folder", "o"), ("s3", "s")):
        points = sorted((r["concurrency"], r["rate"]) for r in rows
                        if r["kind"] == "archiver" and r["store"] == store)
        if points:
            ax.plot(*zip(*points, strict=True), marker=marker, label=f"archiver -> {store}")
    for i, row in enumerate(r for r in rows if r["kind"] == "baseline"):
        ax.axhline(row["rate"], linestyle="--", color=f"C{i + 2}", label=row["label"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency (assets in flight)")
    ax.set_ylabel("assets/s")
    ax.set_title("archive throughput, 50 ms per request (baselines are sequential)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_SECTION = re.compile(r"^<!-- (?P<name>[a-z0-9-]+) -->\n.*?^<!-- /(?P=name) -->\n", re.M | re.S)


def put_section(path: Path, name: str, lines: list[str]) -> None:
    """Write ``lines`` into ``path`` between ``<!-- name -->`` and ``<!-- /name -->``,
    replacing that block if it is there, else appending it. Other benchmarks' blocks and text
    stay as they are, so each command refreshes only its own figures."""
    block = f"<!-- {name} -->\n" + "\n".join(lines).rstrip("\n") + f"\n<!-- /{name} -->\n"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    found = [m for m in _SECTION.finditer(text) if m.group("name") == name]
    if found:
        text = text[:found[0].start()] + block + text[found[0].end():]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    path.write_text(text, encoding="utf-8")


def kept_sections(path: Path) -> list[str]:
    """The marked blocks of ``path`` (see ``put_section``), to carry over a rewrite."""
    if not path.exists():
        return []
    return [m.group(0) for m in _SECTION.finditer(path.read_text(encoding="utf-8"))]


def write_report(res: Results, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "RESULTS.md"
    kept = kept_sections(md)
    cap = res.workload.get("origin_capacity", {})
    lines = [
        f"# archiver benchmarks ({res.profile} profile)", "",
        f"- command: `{res.command}`",
        f"- machine: {machine()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- workload: {res.workload.get('articles')} articles (bench.corpus via bench.workload), "
        f"{res.workload.get('assets')} unique assets, {res.workload.get('latency_ms')} ms per "
        "request (CORS proxy hop: twice), unlimited bandwidth, loopback only",
        f"- total time of this run: {res.workload.get('elapsed_s')} s", "",
    ]
    if cap:
        lines += [f"Origin ceiling (latency 0, one asyncio client process): "
                  f"{cap['small']['requests_s']:.0f} requests/s on ~"
                  f"{cap['small']['mean_kb']:.0f} KB bodies with 64 connections, "
                  f"{cap['large']['mb_s']:.0f} MB/s on 2 MB bodies with 16; the "
                  "`origin / S3 CPU %` column is the CPU of the origin processes and of the "
                  "moto server (100 = one core busy) during each run.", ""]
    lines += ["## Figures", "", *table(res.rows), "", "## Targets", "", *targets(res), ""]
    if res.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in res.notes], ""]
    md.write_text("\n".join(lines) + "".join("\n" + block for block in kept), encoding="utf-8")
    written = [md]
    png = plot(res.rows, out_dir / "throughput.png")
    if png is not None:
        written.append(png)
    return written
