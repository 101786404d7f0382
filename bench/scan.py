"""Scanner throughput: archiver's scan against a plain BeautifulSoup baseline, one core.

    python -m bench.scan [--articles 10000] [--seed 7] [--corpus ../shared/corpus/real]

Builds the articles with bench.corpus into a temporary folder, reads them once (both sides
get the same strings), then times, best of --repeat with the sides interleaved: the baseline
(bs4 with ``html.parser``, finding ``img[src]``, ``img[data-original]`` and ``a[href]`` only),
``scan_text`` on the same strings, and ``scan_paths`` on the folder (reading and decoding
included). Also prints the totals
per kind, and the same totals for the real corpus when it is present.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from bs4 import BeautifulSoup

from archiver.scan import scan_paths, scan_text
from archiver.settings import ScanSettings
from bench.corpus import generate

REAL = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real"


def baseline(text: str) -> int:
    """What a typical script does: parse the whole page, collect a few attributes."""
    soup = BeautifulSoup(text, "html.parser")
    found = [img.get("src") or img.get("data-original") for img in soup.find_all("img")]
    found += [a.get("href") for a in soup.find_all("a")]
    return len(found)


def run_once(func: Callable[[str], object], texts: Sequence[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        func(text)
    return time.perf_counter() - start


def compare(sides: dict[str, Callable[[str], object]], texts: Sequence[str], repeat: int
            ) -> dict[str, float]:
    """Best-of-``repeat`` rates, the sides interleaved so that a busy machine hurts both."""
    best = {label: float("inf") for label in sides}
    for _ in range(repeat):
        for label, func in sides.items():
            best[label] = min(best[label], run_once(func, texts))
    return {label: report(label, len(texts), elapsed) for label, elapsed in best.items()}


def report(label: str, count: int, elapsed: float) -> float:
    rate = count / elapsed
    print(f"{label:<34} {count:>6} articles  {elapsed:7.2f} s  {rate:8.0f} articles/s")
    return rate


def totals(paths: Sequence[str], settings: ScanSettings) -> Counter[str]:
    counts: Counter[str] = Counter()
    for result in scan_paths(paths, settings):
        counts["articles"] += 1
        counts.update(ref.kind for ref in result.references)
        counts["skipped"] += len(result.skipped)
        counts["warnings"] += len(result.warnings)
        counts["alternates"] += sum(len(ref.alternates) for ref in result.references)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=REAL)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    settings = ScanSettings()
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as tmp:
        paths = generate(args.articles, args.seed, tmp)
        texts = [p.read_text(encoding="utf-8") for p in paths]
        size = sum(len(t.encode()) for t in texts)
        print(f"corpus: {len(texts)} generated articles, {size / len(texts) / 1024:.1f} KiB "
              f"average, seed {args.seed}")
        rates = compare({
            "baseline bs4 html.parser": baseline,
            "archiver scan_text (bs4+lxml)": lambda t: scan_text(t, "a", settings),
        }, texts, args.repeat)
        base, ours = rates.values()
        start = time.perf_counter()
        counts = totals([tmp], settings)
        elapsed = time.perf_counter() - start
        print(f"{'archiver scan_paths (with I/O)':<34} {counts['articles']:>6} articles  "
              f"{elapsed:7.2f} s  {counts['articles'] / elapsed:8.0f} articles/s")
        print(f"ratio archiver/baseline: {ours / base:.2f}x")
        print("generated totals: " + _kinds(counts))
    if args.corpus.is_dir():
        print(f"real corpus totals ({args.corpus}): " + _kinds(totals([str(args.corpus)],
                                                                        settings)))


def _kinds(counts: Counter[str]) -> str:
    keys = ("articles", "image", "gif", "video", "alternates", "skipped", "warnings")
    return "  ".join(f"{k}={counts[k]}" for k in keys)


if __name__ == "__main__":
    main()
