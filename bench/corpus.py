"""A deterministic generator of Hexo articles shaped like ../shared/corpus/real (data only).

``generate(n, seed, out_dir)`` writes ``n`` posts mixing the real sources in their real
proportions: ZAKER (proxied stills with ``data-original``, some ``data-gif-url`` GIF + still
pairs, some v.qq.com players), cnBeta (unproxied thumbnail inside a link to the full image,
sohu players), OSChina (indentation runs, GIFs), jandan (proxied jandan/sinaimg), Dockone,
woshipm. Asset URLs depend only on (seed, article index, image index), so two runs with the
same arguments write identical bytes; about 1 in 20 images is shared with another article,
as real feeds reuse pictures. ``origin_host_map`` renames hosts (e.g. to a test server's
fake public names) without changing anything else.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from pathlib import Path

PROXY = "https://cors.zfour.workers.dev/?"
SOURCES = (  # (name, weight) from the real corpus counts, plus ZAKER's GIF and video posts
    ("zaker", 22), ("zaker_gif", 3), ("zaker_video", 2), ("cnbeta", 24), ("oschina", 8),
    ("jandan", 5), ("dockone", 2), ("woshipm", 2), ("juejin", 1),
)
SHARED_EVERY = 20  # one image in this many points at an asset of an earlier article


class _Article:
    """Deterministic ids and URLs for one article."""

    def __init__(self, seed: int, index: int, hosts: Mapping[str, str], rng: random.Random):
        self.seed, self.index, self.hosts, self.rng = seed, index, hosts, rng

    def hexid(self, n: int, length: int = 24) -> str:
        index = self.index
        if n > 0 and self.index > 0 and self.rng.randrange(SHARED_EVERY) == 0:
            index = self.rng.randrange(self.index)  # reuse an earlier article's asset
        digest = hashlib.sha256(f"{self.seed}:{index}:{n}".encode()).hexdigest()
        return digest[:length]

    def url(self, scheme: str, host: str, path: str) -> str:
        return f"{scheme}://{self.hosts.get(host, host)}{path}"

    def proxied(self, url: str) -> str:
        return self.url("https", "cors.zfour.workers.dev", "/?") + url


def _front(title: str, cats: tuple[str, str, str], headimg: str | None, thumb: str,
           author: str, date: str) -> str:
    lines = ["", "---", f"title: '{title}'", "categories: ", *[f" - {c}" for c in cats]]
    if headimg is not None:
        lines.append(f"headimg: '{headimg}'")
    lines += [f"author: {author}", "comments: false", f"date: {date}", f"thumbnail: '{thumb}'",
              "---", ""]
    return "\n".join(lines) + "\n"


def _wrap(html: str) -> str:
    return "<div>   \n" + html + "  \n</div>" + " " * 12


def _para(a: _Article, n: int) -> str:
    words = ("archiver", "媒体", "视频", "图片", "保存", "文章", "网络", "数据")
    return "".join(f"<p>{''.join(a.rng.choice(words) for _ in range(30))}。</p>" for _ in range(n))


def _zaker(a: _Article, gif: bool = False, video: bool = False) -> tuple[str, str]:
    parts: list[str] = []
    first = ""
    if video:
        vid = "v" + a.hexid(99, 10)
        page = f"https://v.qq.com/x/page/{vid}.html"
        parts.append(f'<p></p><div style="background-color:#ececec" id="{page}" class="iframe_'
                     f'video"><iframe src="//v.qq.com/iframe/player.html?vid={page}&auto=0" '
                     'allowfullscreen frameborder="0" height="100%" width="100%"></iframe></div>')
    for n in range(a.rng.randint(1, 6)):
        # Host and folder derive from the asset id, so a shared asset has one URL everywhere.
        h = a.hexid(n)
        host = f"zkres{1 + int(h[0], 16) % 2}.myzaker.com"
        base = a.url("http", host, f"/20220{1 + int(h[1], 16) % 9}/{h}")
        still = base + "_1024.jpg"
        first = first or still
        gif_attr = f' data-gif-url="{base}_raw.gif"' if gif and n % 2 == 0 else ""
        cls = " zaker_gif_cache" if gif_attr else ""
        parts.append(f'<div class="img_box" id="id_imagebox_{n}" onclick><div class="content_img'
                     f'_div"><img class="lazy opacity_0{cls}" id="img_{n}" data-original="{still}'
                     f'"{gif_attr} data-height="{300 + n}" data-width="640" src="'
                     f'{a.proxied(still)}" referrerpolicy="no-referrer"></div></div>')
        parts.append(_para(a, 2))
    return a.proxied(first), "".join(parts)


def _cnbeta(a: _Article) -> tuple[str, str]:
    parts = [f"<strong>{_para(a, 1)}</strong>"]
    first = ""
    for n in range(a.rng.randint(1, 4)):
        ext = a.rng.choice((".jpg", ".jpg", ".png", ".webp", ".gif"))
        h = a.hexid(n, 15)
        path = f"/article/2022/0{1 + int(h[0], 16) % 9}{h[1:3]}/{h}{ext}"
        full = a.url("https", "static.cnbetacdn.com", path)
        thumb = a.url("https", "static.cnbetacdn.com", "/thumb" + path)
        first = first or thumb
        parts.append(f'<p style="text-align: center;"><a href="{full}" target="_blank"><img src="'
                     f'{thumb}" title="" alt="pic" referrerpolicy="no-referrer"></a></p>')
        parts.append(_para(a, 2))
    if a.rng.randrange(4) == 0:
        parts.append(f'<iframe src="//tv.sohu.com/s/sohuplayer/iplay.html?bid={a.index}&autoplay'
                     '=false&disablePlaylist=true" width="640" height="480" frameborder="0">'
                     "</iframe>")
    return first, "".join(parts)


def _simple(host: str, prefix: str, proxied: bool, exts: tuple[str, ...]
            ) -> Callable[[_Article], tuple[str, str]]:
    def build(a: _Article) -> tuple[str, str]:
        parts = ["\n" + " " * 40 + "<p>"]
        first = ""
        for n in range(a.rng.randint(1, 5)):
            url = a.url("http" if proxied else "https", host,
                        f"{prefix}{a.hexid(n, 20)}{a.rng.choice(exts)}")
            first = first or url
            src = a.proxied(url) if proxied else url
            parts.append(" " * 48 + f'<img src="{src}" alt="" referrerpolicy="no-referrer">\n')
            parts.append(_para(a, 1))
        return (a.proxied(first) if proxied else first), "".join(parts)
    return build


_BUILDERS: dict[str, Callable[[_Article], tuple[str, str]]] = {
    "zaker": _zaker,
    "zaker_gif": lambda a: _zaker(a, gif=True),
    "zaker_video": lambda a: _zaker(a, video=True),
    "cnbeta": _cnbeta,
    "oschina": _simple("oscimg.oschina.net", "/oscnet/up-", False, (".png", ".jpg", ".gif")),
    "jandan": _simple("img.jandan.net", "/news/2022/01/", True, (".jpg!custom", ".jpg")),
    "dockone": _simple("dockone.io", "/uploads/article/20220101/", True, (".png", ".gif")),
    "woshipm": _simple("image.woshipm.com", "/wp-files/2022/01/", True, (".png", ".jpeg")),
    "juejin": lambda a: ("https://picsum.photos/400/300?random=" + str(a.index), _para(a, 4)),
}
_CATEGORIES = {"zaker": "ZAKER", "cnbeta": "cnBeta", "oschina": "开源中国", "jandan": "煎蛋",
               "dockone": "Dockone", "woshipm": "人人都是产品经理", "juejin": "掘金"}


def generate(
    n_articles: int, seed: int, out_dir: str | Path,
    origin_host_map: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``n_articles`` posts into ``out_dir``; returns their paths (deterministic)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hosts = dict(origin_host_map or {})
    names, weights = zip(*SOURCES, strict=True)
    picker = random.Random(seed)
    paths: list[Path] = []
    for index in range(n_articles):
        source = picker.choices(names, weights)[0]
        rng = random.Random(f"{seed}:{index}")
        article = _Article(seed, index, hosts, rng)
        headimg, body = _BUILDERS[source](article)
        family = source.split("_")[0]
        front = _front(f"Article {index} of {family}", ("新媒体", _CATEGORIES[family], "channel"),
                       headimg, headimg, _CATEGORIES[family],
                       f"Thu, {index % 28 + 1:02d} Jan 2022 02:14:00 GMT")
        path = out / f"{family}-{index:06d}.md"
        path.write_text(front + _wrap(body), encoding="utf-8")
        paths.append(path)
    return paths
