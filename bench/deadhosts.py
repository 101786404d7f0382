"""What dead hosts cost: ``archiver archive`` (a fresh process, default settings) on 160 assets
whose hosts do not resolve, and on one asset whose server accepts and never answers.

    python -m bench.deadhosts [--assets 160] [--hosts 16] [--skip-silent]

Names under ``.invalid`` never resolve (RFC 6761), online or offline. The silent server is a
local socket that accepts and holds connections, reached through ``--connect-to``. Before the
breaker, the negative DNS answer and the response deadline, the same runs took 78 s and 126 s.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _articles(root: Path, assets: int, hosts: int) -> Path:
    posts = root / "posts"
    posts.mkdir()
    per = 8
    for a in range(0, assets, per):
        imgs = "\n".join(f'<img src="http://img{n % hosts}.bench-dead.invalid/{n}.jpg">'
                         for n in range(a, min(a + per, assets)))
        (posts / f"post{a // per}.md").write_text(f"---\ntitle: p{a}\n---\n{imgs}\n",
                                                  encoding="utf-8")
    return posts


def _archive(args: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "archiver", "archive", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=900, check=False)
    return time.perf_counter() - started, run.stdout.strip().splitlines()[-1]


def _silent_server() -> tuple[socket.socket, list[socket.socket]]:
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return server, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--assets", type=int, default=160)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--skip-silent", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        posts = _articles(root, opts.assets, opts.hosts)
        wall, summary = _archive([str(posts), "--store", str(root / "a1")], root)
        print(f"{opts.assets} assets on {opts.hosts} unresolvable hosts: {wall:.1f} s "
              f"(before: 78 s; target < 5 s)\n  {summary}")
        if opts.skip_silent:
            return
        server, held = _silent_server()
        port = server.getsockname()[1]
        one = root / "one"
        one.mkdir()
        (one / "a.md").write_text('<img src="http://silent.example/x.jpg">\n', encoding="utf-8")
        wall, summary = _archive([str(one), "--store", str(root / "a2"), "--allow-private",
                                  "127.0.0.0/8", "--connect-to",
                                  f"silent.example:80:127.0.0.1:{port}"], root)
        print(f"1 asset on a server that accepts and never answers: {wall:.1f} s with default "
              f"settings (before: 126 s; target < 45 s), {len(held)} connections\n  {summary}")
        # The worst case: the origin and the proxy the article used both accept and stall.
        two = root / "two"
        two.mkdir()
        (two / "a.md").write_text('<img src="https://cors.zfour.workers.dev/?http://silent.example'
                                  '/y.jpg">\n', encoding="utf-8")
        wall, summary = _archive([str(two), "--store", str(root / "a3"), "--allow-private",
                                  "127.0.0.0/8", "--connect-to",
                                  f"silent.example:80:127.0.0.1:{port}", "--connect-to",
                                  f"cors.zfour.workers.dev:443:127.0.0.1:{port}"], root)
        print(f"1 asset whose origin and proxy both never answer: {wall:.1f} s (the deadline, "
              f"40 s, bounds it)\n  {summary}")
        server.close()
        for conn in held:
            conn.close()


if __name__ == "__main__":
    main()
