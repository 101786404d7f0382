"""Golden scan output: everything ``scan_text`` returns, serialized deterministically.

The scanner's output must not change by accident (a faster parser, a cache). These cases, and
the real corpus when it is present, are scanned and compared with the committed files in
``tests/golden``. A deliberate change of what the scanner finds regenerates them:

    python -m tests.support.golden            # rewrite tests/golden/*.jsonl
    python -m tests.support.golden --check    # compare only (what the tests do)

then review the diff of ``tests/golden/scan-cases.jsonl`` before committing it. The corpus posts
themselves are never copied: for them only digests are committed (of each post's bytes and of
its serialized scan), and a mismatch prints the scan as it is now.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.models import ArticleScan
from archiver.scan import scan_text
from archiver.scan.articles import decode
from archiver.settings import ScanSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
GOLDEN = ROOT / "golden"
CASES_FILE = GOLDEN / "scan-cases.jsonl"
CORPUS_FILE = GOLDEN / "scan-corpus.jsonl"
CORPUS = ROOT.parents[1] / "shared" / "corpus" / "real"


def serialize(scan: ArticleScan, path: str | None = None) -> str:
    """One line of JSON holding every field of ``scan`` (and of its references and skipped
    values), in the scanner's order; ``path`` replaces the scan's path (machine-specific)."""
    data = dataclasses.asdict(scan)
    if path is not None:
        data["path"] = path
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def digest(data: bytes | str) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def scan_bytes(data: bytes, article: str, settings: ScanSettings) -> ArticleScan:
    """What ``scan_paths`` returns for a file holding ``data`` (decoding warnings included)."""
    text = decode(data, settings)
    if text.text is None:
        return ArticleScan(article=article, path="", warnings=text.warnings)
    scan = scan_text(text.text, article, settings)
    if text.warnings:
        scan = dataclasses.replace(scan, warnings=text.warnings + scan.warnings)
    return scan


# Settings the cases run under: the defaults, the archive's public base set (archived copies),
# and other image keys with a base URL for relative references.
SETTINGS = {
    "default": ScanSettings(),
    "archive-base": Settings.model_validate(
        {"store": {"public_base_url": "https://cdn.example.org/a/"}}).scan,
    "keys-base": ScanSettings(image_keys=["hero", "photos", "cover"],
                              base_url="https://blog.example.com/posts/",
                              default_scheme="http"),
}


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes | str  # bytes go through decode() as a file would; str straight to scan_text
    settings: str = "default"


PROXY = "https://cors.zfour.workers.dev/?"
DIGEST = "ab" * 32
HOSTILE: dict[str, str | bytes] = {
    "empty": "",
    "only-fence": "---\n---\n",
    "unclosed-front": "---\ntitle: x\n<img src='https://a.example/b.png'>",
    "front-list": "---\n- a\n- b\n---\n<img src=https://a.example/l.jpg>",
    "front-deep": "---\n" + "[" * 3000 + "\n---\n<img src=https://a.example/d.jpg>",
    "front-malformed": ("\n---\ntitle: 'It's broken: yes'\nheadimg: 'https://a.example/h.jpg'\n"
                        "images:\n - https://a.example/1.jpg\n - 'https://a.example/2.jpg'\n"
                        "thumbnail: https://a.example/t.jpg\n---\n<img"
                        " src='https://a.example/b.png'>"),
    "front-mappings": ("---\nphotos:\n  - https://a.example/1.jpg\n  - {url:"
                       " https://a.example/2.jpg}"
                       "\n  - 3\nbanner: {src: https://a.example/3.jpg}\nimage: null\n"
                       "date: 2021-03-04 05:06:07\ntitle: 12\nhero: //a.example/hero.png\n---\n"),
    "front-semicolons": ";;;\ntitle: semi\ncover: https://a.example/c.jpg\n;;;\nbody",
    "front-date-forms": "---\ndate: [1, 2]\ntitle: null\ncover: [https://a.example/x.png]\n---\n",
    "bom-crlf": "\ufeff\r\n\r\n---\r\ntitle: crlf\r\nheadimg: https://a.example/h.jpg\r\n---\r\n"
                "<img\r\nsrc=\"https://a.example/crlf.png\"\r\n>\r\nbody\r",
    "cr-only": "---\rtitle: cr\rheadimg: https://a.example/cr.jpg\r---\r<img src=x.png>",
    "broken-unclosed-attr": '<p><img src="https://a.example/x.jpg" alt="unclosed<img src=y.png>',
    "broken-never-closed": '<div><img src=https://a.example/x.jpg><p>never closed',
    "broken-gt-in-attr": '<img alt="a > b" src="https://a.example/x.jpg">',
    "broken-upper": "<IMG SRC='https://a.example/X.JPG' DATA-ORIGINAL=\"https://a.example/o.jpg\">",
    "broken-video-closers": ('<video><source src="https://a.example/x.jpg"></video></video></div>'
                             '<source src="https://a.example/after">'),
    "broken-lt-after": '<img src="https://a.example/x.jpg"<p><img src=https://a.example/n.gif>',
    "broken-eof": '<p><img src="https://a.example/x.jpg"',
    "broken-nested-quotes": "<img src='https://a.example/\"q\".jpg'"
                            " data-src=\"https://a.example/'s.png\">",
    "pathological": '<img alt="' * 300 + "<img src" * 300 + "![a](" * 300 + "url(" * 300,
    "entities": ('<img src="https://a.example/q.jpg?a=1&amp;b=2&#38;c=&#x33;#frag">'
                 '<a href="https&#58;//a.example/e.png">e</a><img src="&#0;&bogus;x.png">'
                 '<img src="https://a.example/&lt;lt&gt;.jpg">'),
    "entities-markdown": "![x](https://a.example/q.jpg?a=1&amp;b=2)"
                         " [l](https://a.example/l&amp;.gif)",
    "schemes": ('<img src="data:image/png;base64,' + "A" * 400 + '"><img src="javascript:alert(1)">'
                '<img src="ftp://a.example/f.jpg"><img src="mailto:x@a.example">'
                '<img src="/rel/p.jpg"><img src="rel.jpg"><a href="rel.gif">r</a>'
                '<a href="https://a.example/page.html">page</a><img src="http://">'
                '<img src="https://[::1/x.jpg"><img src="https://a.example:99999/x.jpg">'
                '<img src="   https://a.example/spaced.jpg   ">'),
    "proxies": (f'<img src="{PROXY}http://p.example/1.jpg"><img'
                f' data-original="http://p.example/1.jpg">'
                '<img src="https://wsrv.nl/?url=p.example/2.png&w=100">'
                '<img src="https://i1.wp.com/p.example/wp-content/3.jpg?resize=10">'
                f'<img src="{PROXY}https%3A%2F%2Fp.example%2F4.gif">'
                f'<img src="{PROXY}{PROXY}http://p.example/5.jpg">'
                f"![m]({PROXY}http://p.example/6.webp)"),
    "zaker-gif": ('<img class="lazy zaker_gif_cache"'
                  ' data-original="http://zkres1.myzaker.com/a_1024.jpg" '
                  'data-gif-url="http://zkres1.myzaker.com/a_raw.gif" '
                  f'src="{PROXY}http://zkres1.myzaker.com/a_1024.jpg">'
                  f'<img data-gif-url="{PROXY}http://zkres1.myzaker.com/b_raw.gif" '
                  'src="http://zkres1.myzaker.com/b_640.jpg"'
                  ' srcset="http://zkres1.myzaker.com/b_2x.jpg 2x">'
                  '<img data-gif-url="none" src="http://zkres1.myzaker.com/c.jpg">'
                  '<img data-gif-url="http://zkres1.myzaker.com/a_raw.gif"'
                  ' src="http://zkres1.myzaker.com/a_raw.gif">'
                  '<img data-gif-url="//zkres1.myzaker.com/d_raw.gif" data-src="data:x">'),
    "vqq": ('<div id="https://v.qq.com/x/page/t0000abcd01.html" class="iframe_video">'
            '<iframe src="//v.qq.com/iframe/player.html?vid=https://v.qq.com/x/page/t0000abcd01.html&auto=0">'
            '</iframe></div><iframe src="https://v.qq.com/txp/iframe/player.html?vid=u0000abcd02">'
            '</iframe><a href="https://v.qq.com/x/cover/mzc00200abcdefg/x0000abcd03.html">c</a>'
            '<div data-vid="https://v.qq.com/x/page/z0000abcd04.html"></div>'
            '<iframe src="https://tv.sohu.com/s2019/player.html?id=1"></iframe>'
            '<iframe src="https://www.youtube.com/embed/abc"></iframe>'
            '<iframe src="https://blog.example/embed/post"></iframe>'
            '<iframe src="//player.bilibili.com/player.html?aid=1"></iframe>'),
    "archived-copies": (f'<img src="https://media.example.org/archive/media/ab/{DIGEST}.jpg">'
                        '<video src="https://cdn.example.org/a/anything.png"></video>'
                        f'<img src="file:///srv/archive/media/ab/{DIGEST}.gif">'
                        f'<img src="https://other.example/media/cd/{DIGEST}.jpg">'
                        f'<img src="/archive/media/ab/{DIGEST}.png">'
                        f'![c](https://x.example/media/ab/{DIGEST}.jpg?v=1)'),
    "html-forms": ('<picture><source srcset="https://a.example/p.avif 1x,'
                   ' https://a.example/p@2x.avif 2x">'
                   '<source data-srcset="https://a.example/p.webp,https://a.example/q.webp">'
                   '<img src="https://a.example/p.jpg"></picture>'
                   '<video src="https://a.example/v.mp4" poster="https://a.example/v.jpg">'
                   '<source src="https://a.example/v.webm"></video><audio'
                   ' src="https://a.example/a.mp3">'
                   '<source src="https://a.example/a"></audio><source'
                   ' src="https://a.example/loose">'
                   '<img srcset="https://a.example/s(1).jpg 1x, https://a.example/s,2.jpg 2x,">'
                   '<div style="background:url(&quot;https://a.example/bg.jpg&quot;)">'
                   "<span style='background-image: URL( https://a.example/bg2.png )'></span>"
                   '<button data-avatar="http://a.example/av.jpeg" id="//a.example/id.gif">'
                   '<a href="https://a.example/full.png"><img'
                   ' src="https://a.example/thumb.png"></a>'),
    "comments-scripts": ('<!-- <img src="https://a.example/commented.jpg"> -->'
                         '<script>var x = "<img src=https://a.example/scripted.jpg>"</script>'
                         '<style>.a{background:url(https://a.example/styled.jpg)}</style>'
                         '<img src="https://a.example/shown.jpg"><!-- unclosed <img src=x.jpg>'),
    "markdown": ("![a](https://a.example/md1.png)\n![b](<https://a.example/md 2.png> \"t\")\n"
                 "[![t](https://a.example/th.jpg)](https://a.example/full.jpg)\n"
                 "![r][one] ![Two][] ![three]\n\n[one]: https://a.example/r1.gif\n"
                 "[two]: <https://a.example/r2.jpg> 'x'\n  [THREE]: https://a.example/r3.webp\n"
                 "```\n![code](https://a.example/code.png)\n```\n~~~\n![t](https://a.example/t.png)"
                 "\n![p](https://a.example/pa(1).png) ![e](https://a.example/e\\_x.png)"),
    "markdown-unclosed-fence": "```\n![a](https://a.example/in.png)\n",
    "nul": "<img src=https://a.example/nul.jpg>\x00 and more",
    "private-escapes": "<img src=\"https://a.example/\U0010fee9t.jpg\" alt=\"\U0010feff\">",
}
HOSTILE_BYTES: dict[str, bytes] = {
    "bytes-invalid-utf8": b"---\ntitle: 'o\xff\xfek'\n---\n<img"
                          b" src=\"https://a.example/\xe9t\xe9.jpg\">",
    "bytes-utf16-le": "\ufeff---\ntitle: wide\n---\n<img src=https://a.example/w.jpg>"
                      "".encode("utf-16-le"),
    "bytes-utf16-be": "\ufeff<img src=https://a.example/wb.jpg>".encode("utf-16-be"),
    "bytes-utf8-bom": b"\xef\xbb\xbf<img src=https://a.example/bom.jpg>",
    "bytes-binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
    "bytes-controls": b"\x01\x02\x03\x04\x05\x06\x07\x08" * 100,
    "bytes-latin1": "<img src=\"https://a.example/caf\u00e9.jpg\" alt=\"\u00e9\">"
                    "".encode("latin-1"),
}

PIECES = (
    "<img ", "src=", "data-gif-url=", "srcset=", "data-srcset=", "data-original=", "data-src=",
    '"', "'", ">", "<", "/>", "</video>", "<video", "<audio ", "</picture>", "<picture>",
    "<source ", "<a href=", "</a>", "<iframe src=", "</iframe>"
                                                    "", "//v.qq.com/iframe/player.html?vid=",
    "vid=", "https://v.qq.com/x/page/a0000abcd01.html", PROXY, "https://wsrv.nl/?url=",
    "http://a.example/x.jpg", "https://b.example/y", ".gif", ".png", ".mp4", " 2x,", ", ",
    "&amp;", "&#", "&quot;", "style=\"background:url(", ")", "![", "](", "[x]: ", "[x]", "\n",
    "---\n", "title: '", "headimg: ", "data:", "\x00", "\ufffd", "%3A%2F%2F", "data-vid=",
    "id=", "<!--", "-->", "<script>", "</script>", "<div ", "<p>", " ", "\t", "```\n", "poster=",
    "file:///srv/archive/media/ab/" + DIGEST + ".jpg", "<IMG SRC=", "\r\n", "\ufeff", "url(",
)


def _random_cases(count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for index in range(count):
        pieces = [rng.choice(PIECES) for _ in range(rng.randrange(1, 80))]
        yield Case(f"random-{seed}-{index}", "".join(pieces),
                   ("default", "archive-base", "keys-base")[index % 3])


def _shuffled_lines(count: int, seed: int) -> Iterator[Case]:
    """Articles made of the fixtures' lines, shuffled and cut: real markup, broken apart."""
    rng = random.Random(seed)
    lines = [line for path in _fixture_files()
             for line in path.read_text(encoding="utf-8").splitlines(keepends=True)]
    for index in range(count):
        picked = [rng.choice(lines) for _ in range(rng.randrange(1, 30))]
        text = "".join(picked)
        cut = rng.randrange(len(text) + 1)
        yield Case(f"lines-{seed}-{index}", text[:cut] if index % 2 else text,
                   ("default", "archive-base", "keys-base")[index % 3])


def _fixture_files() -> Iterator[Path]:
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file() and path.suffix in (".md", ".html", ".txt"):
            yield path


def cases() -> list[Case]:
    """Every golden case, in a fixed order."""
    out: list[Case] = []
    for path in _fixture_files():
        name = "fixture:" + path.relative_to(FIXTURES).as_posix()
        for variant in SETTINGS:
            out.append(Case(f"{name}@{variant}", path.read_bytes(), variant))
    for variant in SETTINGS:
        out.extend(Case(f"hostile:{n}@{variant}", t, variant) for n, t in HOSTILE.items())
        out.extend(Case(f"hostile:{n}@{variant}", b, variant) for n, b in HOSTILE_BYTES.items())
    out.extend(_random_cases(300, 11))
    out.extend(_shuffled_lines(100, 12))
    return out


def run(case: Case) -> str:
    settings = SETTINGS[case.settings]
    if isinstance(case.data, bytes):
        scan = scan_bytes(case.data, case.name, settings)
    else:
        scan = scan_text(case.data, case.name, settings)
    return serialize(scan)


def case_line(case: Case) -> str:
    return json.dumps({"case": case.name, "input_sha256": digest(case.data),
                       "scan": json.loads(run(case))}, ensure_ascii=True, separators=(",", ":"))


def corpus_posts(corpus: Path = CORPUS) -> list[Path]:
    return sorted(p for p in corpus.rglob("*.md") if p.is_file())


def corpus_scan(path: Path, corpus: Path = CORPUS) -> str:
    article = path.relative_to(corpus).with_suffix("").as_posix()
    settings = SETTINGS["default"]
    scan = scan_bytes(path.read_bytes(), article, settings)
    return serialize(scan, path=path.relative_to(corpus).as_posix())


def corpus_line(path: Path, corpus: Path = CORPUS) -> str:
    return json.dumps({"post": path.relative_to(corpus).as_posix(),
                       "input_sha256": digest(path.read_bytes()),
                       "scan_sha256": digest(corpus_scan(path, corpus))},
                      separators=(",", ":"))


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines() if line]


def write(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="ascii")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="regenerate or check the golden scan output")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    outputs = {CASES_FILE: [case_line(c) for c in cases()]}
    if CORPUS.is_dir():
        outputs[CORPUS_FILE] = [corpus_line(p) for p in corpus_posts()]
    status = 0
    for path, lines in outputs.items():
        old = path.read_text(encoding="ascii").splitlines() if path.exists() else []
        changed = sum(a != b for a, b in zip(old, lines, strict=False)) + abs(len(old) - len(lines))
        print(f"{path.relative_to(ROOT.parent)}: {len(lines)} lines, {changed} changed")
        if args.check:
            status |= changed > 0
        else:
            write(path, lines)
    return status


if __name__ == "__main__":
    sys.exit(main())
