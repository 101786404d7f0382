"""The benchmark workload: bench.corpus articles made fetchable on a local internet.

bench.corpus writes posts as the real feeds do. Two things cannot be fetched offline and are
changed here, in a copy of the text only: v.qq.com players (yt-dlp needs the real site) become
``<video src>`` of a direct MP4 for one player in ``video_every`` (the others are dropped, so a
run has "a few" 5-50 MB videos, as issue 6 asks) and ``https://`` media URLs become ``http://``,
because the local origin speaks plain HTTP (so TLS cost is left out for archiver and the
baselines alike).
"""

from __future__ import annotations

import hashlib
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


ZAKER_HOSTS = tuple(f"zkres{n}.myzaker.com" for n in range(1, 5))
_ZAKER_POST = """
---
title: 'bench post {index}'
categories:
 - ZAKER
headimg: '{proxy}{first}'
author: ZAKER
comments: false
date: Mon, 31 Jan 2022 20:18:20 GMT
thumbnail: '{proxy}{first}'
---

<div>
<p>text before the pictures of post {index}.</p>{images}<div id="article_bottom"></div>
</div>
"""
_ZAKER_IMG = ('<p></p><div class="img_box" id="id_imagebox_{n}" onclick><div class="content_img_div'
              ' perview_img_div"><img class="lazy opacity_0 " id="img_{n}" data-original="{url}"'
              ' data-height="401" data-width="600" src="{proxy}{url}" referrerpolicy='
              '"no-referrer"></div></div><p>paragraph {n}.</p>')


def zaker_articles(out_dir: str | Path, articles: int = 100, per_article: int = 5,
                   hosts: Sequence[str] = ZAKER_HOSTS, seed: int = 11) -> list[Path]:
    """``articles`` ZAKER posts as the feeds write them (an http origin in ``data-original``,
    the same URL behind the CORS proxy in ``src``, the first one again as ``headimg`` and
    ``thumbnail``), each with ``per_article`` distinct images spread round-robin over
    ``hosts``: the side-by-side workload of bench.compare (every URL unique, sizes from
    bench.origin)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proxy = "http://cors.zfour.workers.dev/?"
    paths = []
    for index in range(articles):
        urls = []
        for n in range(per_article):
            number = index * per_article + n
            digest = hashlib.sha256(f"{seed}:{number}".encode()).hexdigest()[:24]
            urls.append(f"http://{hosts[number % len(hosts)]}/2022{1 + number % 12:02d}/"
                        f"{digest}_1024.jpg")
        images = "".join(_ZAKER_IMG.format(n=n, url=url, proxy=proxy)
                         for n, url in enumerate(urls))
        path = out / f"zaker-{index:05d}.md"
        path.write_text(_ZAKER_POST.format(index=index, proxy=proxy, first=urls[0],
                                           images=images), encoding="utf-8")
        paths.append(path)
    return paths
