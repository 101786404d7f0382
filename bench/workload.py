"""The benchmark workload: bench.corpus articles made fetchable on a local internet.

bench.corpus writes posts as the real feeds do. Two things cannot be fetched offline and are
changed here, in a copy of the text only: v.qq.com players (yt-dlp needs the real site) become
``<video src>`` of a direct MP4 for one player in ``video_every`` (the others are dropped, so a
run has "a few" 5-50 MB videos, as issue 6 asks) and ``https://`` media URLs become ``http://``,
because the local origin speaks plain HTTP (so TLS cost is left out for archiver and the
baselines alike).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from archiver.plan import collect_assets
from archiver.scan import scan_paths
from archiver.settings import ScanSettings
from bench.corpus import generate

VIDEO_HOST = "video.bench.example"
_PLAYER = re.compile(r'<div[^>]*class="iframe_video"[^>]*>\s*<iframe[^>]*vid=[^"&]*?'
                     r'/x/page/(v[0-9a-f]+)\.html[^>]*>\s*</iframe>\s*</div>')


def make_articles(n_articles: int, seed: int, out_dir: str | Path,
                  video_every: int = 10) -> list[Path]:
    """Write ``n_articles`` bench.corpus posts into ``out_dir``, adapted for offline runs."""
    paths = generate(n_articles, seed, out_dir)
    players = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = text.replace("https://", "http://")

        def player(match: re.Match[str]) -> str:
            nonlocal players
            players += 1
            if players % video_every:
                return ""
            return f'<video src="http://{VIDEO_HOST}/vod/{match.group(1)}.mp4"></video>'

        new = _PLAYER.sub(player, new)
        if new != text:
            path.write_text(new, encoding="utf-8")
    return paths


def asset_urls(paths: Sequence[str | Path]) -> list[str]:
    """The unique origin URLs archiver would fetch for these articles: the baselines' input."""
    scans = scan_paths([str(p) for p in paths], ScanSettings())
    return [asset.origin for asset in collect_assets(scans)]
