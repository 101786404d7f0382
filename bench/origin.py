"""The local internet: origin servers and a CORS proxy on loopback, in worker processes.

Every URL has deterministic bytes computed on the fly (never held in memory): a real media
prefix (JPEG, PNG, GIF, WebP or MP4 magic, readable by Pillow) followed by filler that is unique
per URL, so content addressing never merges two assets. Sizes come from a hash of the URL (10 KB
to 2 MB images, 5-50 MB videos) unless the file name says ``-<N>b.<ext>``.

The server speaks HTTP/1.1 with keep-alive on asyncio streams and answers any Host, so fake
public hostnames reach it through ``--connect-to ::127.0.0.1:PORT``; ``/?<url>`` is served as the
CORS proxy (one more hop of latency), and absolute-form targets (``GET http://host/path``) make
it a forward proxy for tools without connect-to (wget, gallery-dl). It runs in its own processes
(``SO_REUSEPORT``), so it does not share a GIL with the code measured; counters live in shared
memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import multiprocessing as mp
import os
import random
import re
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from statistics import NormalDist
from typing import Any
from urllib.parse import unquote, urlsplit

KB = 1024
MB = 1024 * 1024
CHUNK = 256 * KB
# Shared counters, by index.
REQUESTS, PROXY_REQUESTS, BYTES, INFLIGHT, MAX_INFLIGHT, NOT_FOUND = range(6)
_COUNTERS = ("requests", "proxy_requests", "bytes", "inflight", "max_inflight", "not_found")

_EXPLICIT_SIZE = re.compile(r"-(\d+)b\.[A-Za-z0-9]+$")
_TYPES = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
    "webp": "image/webp", "mp4": "video/mp4",
}
_BLOCK = random.Random(0).randbytes(CHUNK)


@dataclass(frozen=True)
class Body:
    """What a URL serves: media type, total size, and the seed of its filler."""

    ext: str
    media_type: str
    size: int
    digest: bytes


def _unit(digest: bytes, salt: int) -> float:
    """A uniform float in (0, 1) from ``digest``, independent per ``salt``."""
    n = int.from_bytes(digest[salt * 4:salt * 4 + 4], "big")
    return (n + 0.5) / 2**32


def body_for(host: str, path: str) -> Body | None:
    """The body of ``http://host/path`` (by extension; JPEG when none), None (404) for a path
    with ``/missing/``.

    Images are log-normal around 60 KB (10 KB-2 MB), GIFs around 300 KB (50 KB-2 MB), videos
    uniform 5-50 MB: close to the scraped posts, and light enough to move 50,000 of them.
    """
    clean = unquote(path.split("?", 1)[0])
    ext = clean.rsplit(".", 1)[-1].lower() if "." in clean.rsplit("/", 1)[-1] else ""
    # ZAKER-style variants and jandan's "!custom" suffix keep the media extension before them.
    ext = ext.split("!", 1)[0]
    if "/missing/" in clean:
        return None
    if ext not in _TYPES:  # placeholder services (picsum.photos/400/300) answer a JPEG
        ext = "jpg"
    digest = hashlib.sha256(f"{host.lower()}{path}".encode()).digest()
    explicit = _EXPLICIT_SIZE.search(clean)
    if explicit:
        size = int(explicit.group(1))
    elif ext == "mp4":
        size = int(5 * MB + _unit(digest, 0) * 45 * MB)
    else:
        median, low = (300 * KB, 50 * KB) if ext == "gif" else (60 * KB, 10 * KB)
        z = NormalDist().inv_cdf(_unit(digest, 0))
        size = int(min(2 * MB, max(low, median * 2.718281828 ** z)))
    return Body(ext, _TYPES[ext], size, digest)


def _prefixes() -> dict[str, bytes]:
    """A tiny valid file per type; the filler after it is past what Pillow reads (after a JPEG's
    EOI, a GIF's trailer, inside an MP4 ``mdat`` box)."""
    from PIL import Image

    out: dict[str, bytes] = {}
    for ext, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, fmt)
        out[ext] = buf.getvalue()
    out["jpeg"] = out["jpg"]
    frames = [Image.new("RGB", (40, 30), (i * 80, 40, 200 - i * 60)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["gif"] = buf.getvalue()
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    out["mp4"] = struct.pack(">I", len(ftyp) + 4) + ftyp
    return out


def iter_body(body: Body, prefixes: dict[str, bytes]) -> Iterator[bytes]:
    """The bytes of ``body`` in chunks of at most CHUNK; memory stays at one chunk."""
    prefix = prefixes[body.ext]
    if body.ext == "mp4":
        mdat = max(8, body.size - len(prefix))
        prefix += struct.pack(">I", mdat) + b"mdat"
    remaining = max(0, body.size - len(prefix))
    yield prefix
    index = 0
    while remaining > 0:
        # The digest and index at the head of each chunk make every chunk of every URL unique.
        chunk = body.digest[:16] + index.to_bytes(8, "big") + _BLOCK[24:]
        chunk = chunk[:remaining]
        remaining -= len(chunk)
        index += 1
        yield chunk


def body_bytes(host: str, path: str) -> bytes:
    """The whole body of a URL (for tests and checks on small assets)."""
    body = body_for(host, path)
    if body is None:
        raise KeyError(path)
    return b"".join(iter_body(body, _prefixes()))


@dataclass(frozen=True)
class Options:
    latency: float = 0.05  # seconds before the status line of every response
    bandwidth: float = 0.0  # bytes/s per connection; 0 = unlimited
    proxy_latency: float | None = None  # extra seconds for a CORS-proxy hop (default latency)


class _Server:
    def __init__(self, opts: Options, counters: SynchronizedArray[int]) -> None:
        self.opts = opts
        self.counters = counters
        self.prefixes = _prefixes()

    def count(self, index: int, delta: int = 1) -> None:
        with self.counters.get_lock():
            self.counters[index] += delta
            if index == INFLIGHT and self.counters[INFLIGHT] > self.counters[MAX_INFLIGHT]:
                self.counters[MAX_INFLIGHT] = self.counters[INFLIGHT]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _version = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if int(headers.get("content-length", "0") or 0):
            await reader.readexactly(int(headers["content-length"]))
        host = headers.get("host", "").split(":")[0]
        if target.startswith(("http://", "https://")):  # forward-proxy form
            parts = urlsplit(target)
            host, target = parts.hostname or host, parts.path + (f"?{parts.query}" if parts.query
                                                                  else "")
        if target == "/__stats":
            data = json.dumps(dict(zip(_COUNTERS, self.counters[:], strict=True))).encode()
            await self._send(writer, 200, "application/json", len(data), method, [data])
            return True
        delay = self.opts.latency
        if target.startswith(("/?http://", "/?https://")):  # the CORS proxy
            inner = urlsplit(unquote(target[2:]))
            host, target = inner.hostname or "", inner.path + (f"?{inner.query}" if inner.query
                                                               else "")
            delay += self.opts.latency if self.opts.proxy_latency is None \
                else self.opts.proxy_latency
            self.count(PROXY_REQUESTS)
        self.count(REQUESTS)
        self.count(INFLIGHT)
        try:
            if delay:
                await asyncio.sleep(delay)
            body = body_for(host, target)
            if body is None:
                self.count(NOT_FOUND)
                await self._send(writer, 404, "text/plain", 9, method, [b"not found"])
            else:
                await self._send(writer, 200, body.media_type, body.size, method,
                                 iter_body(body, self.prefixes))
        finally:
            self.count(INFLIGHT, -1)
        return headers.get("connection", "").lower() != "close"

    async def _send(self, writer: asyncio.StreamWriter, status: int, media_type: str, size: int,
                    method: str, chunks: Any) -> None:
        reason = "OK" if status == 200 else "Not Found"
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {media_type}\r\n"
                     f"Content-Length: {size}\r\nConnection: keep-alive\r\n\r\n".encode())
        if method == "HEAD":
            await writer.drain()
            return
        started, sent, bandwidth = time.monotonic(), 0, self.opts.bandwidth
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            if bandwidth > 0:
                ahead = sent / bandwidth - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        self.count(BYTES, sent)


def _worker(sock_port: int, opts: Options, counters: SynchronizedArray[int],
            ready: Any) -> None:
    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", sock_port))
        server = await asyncio.start_server(_Server(opts, counters).handle, sock=sock,
                                            backlog=1024, limit=64 * KB)
        ready.put(os.getpid())
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class LocalInternet:
    """Origin + CORS proxy in ``workers`` processes on one loopback port. Use as a context
    manager; ``connect_to`` is the archiver rule list, ``proxy_url`` the forward proxy."""

    def __init__(self, opts: Options | None = None, workers: int = 2) -> None:
        self.opts = opts or Options()
        self.workers = workers
        ctx = mp.get_context("spawn")
        self.counters: SynchronizedArray[int] = ctx.Array("q", len(_COUNTERS))
        self._ready = ctx.Queue()
        # A bound, non-listening SO_REUSEPORT socket holds the port for the workers' listeners.
        self._hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._hold.bind(("127.0.0.1", 0))
        self.port: int = self._hold.getsockname()[1]
        self._procs = [ctx.Process(target=_worker, args=(self.port, self.opts, self.counters,
                                                         self._ready), daemon=True)
                       for _ in range(workers)]

    def start(self) -> LocalInternet:
        for proc in self._procs:
            proc.start()
        for _ in self._procs:
            self._ready.get(timeout=30)
        return self

    def stop(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(10)
        self._hold.close()
        self._ready.close()

    def __enter__(self) -> LocalInternet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def connect_to(self) -> list[str]:
        """Every host and port to this server (curl-style rule with empty host and port)."""
        return [f"::127.0.0.1:{self.port}"]

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        with self.counters.get_lock():
            return dict(zip(_COUNTERS, self.counters[:], strict=True))

    def reset(self) -> None:
        with self.counters.get_lock():
            for i in range(len(_COUNTERS)):
                self.counters[i] = 0


async def _hammer(port: int, path: str, concurrency: int, seconds: float) -> tuple[int, int]:
    done = nbytes = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, nbytes
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {path} HTTP/1.1\r\nHost: capacity.bench.example\r\n\r\n".encode()
        while time.monotonic() < stop:
            writer.write(request)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            done += 1
            nbytes += length
        writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, nbytes


def capacity(port: int, path: str = "/capacity/small.jpg", concurrency: int = 64,
             seconds: float = 2.0) -> dict[str, float]:
    """What the server delivers to ``concurrency`` keep-alive clients (run it with latency 0):
    the ceiling to compare the archive rates against, so the origin is known not to be the
    bottleneck. The client is one asyncio process; its own CPU is part of the cost."""
    started = time.perf_counter()
    done, nbytes = asyncio.run(_hammer(port, path, concurrency, seconds))
    wall = time.perf_counter() - started
    return {"requests_s": done / wall, "mb_s": nbytes / MB / wall, "mean_kb": nbytes / 1024 /
            max(1, done)}
