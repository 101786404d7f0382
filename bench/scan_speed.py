"""``scan_text`` on one core, today's scanner against a baseline commit's, in the same run.

    python -m bench.scan_speed [--runs 3] [--baseline abba989] [--passes 10] [--generated 3000]
                               [--write]

The baseline's ``archiver`` package is exported from git (``git archive``) into a temporary
folder; each side runs in its own single-threaded process (the baseline's on PYTHONPATH), the
sides alternating, ``--runs`` rounds, the load average taken before each round. A side
measures CPU time (``time.process_time``, so that the shared machine's other processes do not
count; they still slow the caches) of:

- ``real, looped``: the real corpus (``../shared/corpus/real``) ``--passes`` times over, as
  ``bench.compare`` measures issue 11's acceptance (the same URLs come back every pass);
- ``real, first pass``: one pass over the real corpus in a fresh process (after one small
  warm-up article);
- ``generated, cold``: ``--generated`` distinct articles of ``bench.corpus`` once, each URL
  new to the process but for the one in 20 images articles share.

Each side also hashes what it returns for every article (the golden tests' serialization),
and the run says whether the two sides' outputs are identical. ``--write`` puts the table into
bench/RESULTS.md (block ``scan-speed``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "corpus" / "real"
BASELINE = "abba989"  # main before the fast scanner: bs4 over the prefiltered tags
SIDES = ("baseline", "now")
MEASURES = ("real, looped", "real, first pass", "generated, cold")


def _side(real: str, generated: str, passes: int) -> dict[str, object]:
    """Run inside a side's process: rates (articles per CPU second) and an output digest."""
    import dataclasses
    import hashlib

    import archiver
    from archiver.scan import scan_text
    from archiver.settings import ScanSettings

    def texts(folder: str) -> list[str]:
        return [p.read_text(encoding="utf-8") for p in sorted(Path(folder).glob("*.md"))]

    def run(items: list[str]) -> float:
        started = time.process_time()
        for text in items:
            scan_text(text, "a", settings)
        return len(items) / (time.process_time() - started)

    settings = ScanSettings()
    # Start-up (lazy imports, the first parser) is not per-article work.
    scan_text("---\ntitle: w\n---\n<a href=https://w.example/a.jpg><img src=/b.png></a>![c](d)",
              "warm-up", settings)
    real_texts, generated_texts = texts(real), texts(generated)
    rates = {"real, first pass": run(real_texts), "generated, cold": run(generated_texts)}
    rates["real, looped"] = max(run(real_texts * passes) for _ in range(3))
    stages = _stages(real_texts * passes, settings)
    digest = hashlib.sha256()
    for text in real_texts + generated_texts:
        scan = scan_text(text, "a", settings)
        digest.update(json.dumps(dataclasses.asdict(scan), ensure_ascii=True).encode())
    return {"rates": rates, "stages": stages, "digest": digest.hexdigest(),
            "module": archiver.__file__}


def _stages(texts: list[str], settings: object) -> dict[str, float]:
    """CPU microseconds per article in each stage of ``scan_text`` (the functions both the
    baseline and today's scanner have), each stage timed over every article at once."""
    from archiver.scan import frontmatter, html, markdown
    from archiver.scan.articles import clean_text
    from archiver.scan.collect import Collector

    def timed(func: Callable[[Any], object], items: list[Any]) -> float:
        started = time.process_time()
        for item in items:
            func(item)
        return (time.process_time() - started) / len(texts) * 1e6

    clean = [clean_text(t) for t in texts]
    parts = [frontmatter.split(t) for t in clean]
    found: list[list[Any]] = []
    for part in parts:
        data = frontmatter.parse(part.front)[0] if part.front is not None else {}
        found.append([*frontmatter.extract(data, settings.image_keys),  # type: ignore[attr-defined]
                      *html.extract(part.body), *markdown.extract(part.body)])

    def collect(items: list[Any]) -> None:
        collector = Collector("a", settings)  # type: ignore[arg-type]
        for item in items:
            collector.add(item)
        collector.references()

    return {
        "clean text, split front matter": timed(lambda t: frontmatter.split(clean_text(t)), texts),
        "front matter (YAML)": timed(lambda p: p.front is not None and frontmatter.parse(p.front),
                                     parts),
        "HTML: prefilter": timed(lambda p: html.prefilter(p.body), parts),
        "HTML: prefilter, parse, extract": timed(lambda p: list(html.extract(p.body)), parts),
        "markdown": timed(lambda p: list(markdown.extract(p.body)), parts),
        "collect: normalise, merge": timed(collect, found),
    }


def export_baseline(ref: str, dest: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "archiver"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def measure(side: str, tree: Path | None, real: Path, generated: Path, passes: int
            ) -> dict[str, object]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    code = (f"import json, sys; sys.path.insert(0, {str(tree or ROOT)!r}); "
            f"sys.path.insert(1, {str(ROOT)!r}); from bench.scan_speed import _side; "
            f"print(json.dumps(_side({str(real)!r}, {str(generated)!r}, {passes})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=env, cwd=tempfile.gettempdir()).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    expected = (tree or ROOT) / "archiver"
    if not str(result["module"]).startswith(str(expected)):
        raise RuntimeError(f"{side} side imported {result['module']}, not {expected}")
    return result


def table(results: dict[str, list[dict[str, object]]], loads: list[float]) -> list[str]:
    lines = ["| measure | baseline articles/s (best / median) | now articles/s (best / median) "
             "| speed-up (best) |", "|---|---|---|---|"]
    for name in MEASURES:
        cells, best = [], {}
        for side in SIDES:
            rates = [float(r["rates"][name]) for r in results[side]]  # type: ignore[index]
            best[side] = max(rates)
            cells.append(f"{max(rates):,.0f} / {statistics.median(rates):,.0f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | "
                     f"{best['now'] / best['baseline']:.2f}x |")
    lines += ["", "Where the time goes, CPU microseconds per article of the real corpus looped "
              "(best round; the stages of scan_text both scanners have):", "",
              "| stage | baseline us/article | now us/article |", "|---|---|---|"]
    for stage in results["now"][0]["stages"]:  # type: ignore[union-attr]
        cells = [min(float(r["stages"][stage]) for r in results[side])  # type: ignore[index]
                 for side in SIDES]
        lines.append(f"| {stage} | {cells[0]:.0f} | {cells[1]:.0f} |")
    same = len({r["digest"] for side in SIDES for r in results[side]}) == 1
    lines += ["", f"- outputs of both sides on the real and generated articles: "
              f"{'identical' if same else 'DIFFERENT'}",
              "- load average (1 min) before each round: " + ", ".join(f"{x:.1f}" for x in loads)
              + " (2 shared cores: above 2 the machine was busy)"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--generated", type=int, default=3000)
    parser.add_argument("--corpus", type=Path, default=REAL)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    from bench.corpus import generate
    from bench.report import put_section

    results: dict[str, list[dict[str, object]]] = {side: [] for side in SIDES}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="archiver-scan-speed-") as tmp:
        tree = export_baseline(args.baseline, Path(tmp) / "baseline")
        generated = Path(tmp) / "generated"
        generate(args.generated, 7, generated)
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            for side in SIDES:
                results[side].append(measure(side, tree if side == "baseline" else None,
                                             args.corpus, generated, args.passes))
    lines = table(results, loads)
    print("\n".join(lines))
    if args.write:
        command = (f"python -m bench.scan_speed --runs {args.runs} --baseline {args.baseline} "
                   f"--passes {args.passes} --generated {args.generated}")
        put_section(ROOT / "bench" / "RESULTS.md", "scan-speed", [
            "## scan_text on one core (issue 11, item 3)", "",
            f"- command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
            "- articles per CPU second of one process (`time.process_time`); figures taken "
            "under shared load", "", *lines])
    return 0 if "DIFFERENT" not in "\n".join(lines) else 1


if __name__ == "__main__":
    sys.exit(main())
