"""Peak RSS and throughput of archiving one large video through yt-dlp and the pipeline.

    python -m bench.video [--size-mb 1024] [--keep]

A local server (in this process) streams a deterministic MP4 of ``--size-mb`` without ever
holding it in memory, behind the test-only yt-dlp extractor (``tests.support.ytdlp_extractor``).
A fresh child process archives it with ``archive_asset`` into a LocalStore, through the egress
proxy, exactly as a worker would; its peak RSS must stay under 200 MB. Every GB file is removed
afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.measure import MB, measure_call

LIMIT_MB = 200
BLOCK = random.Random(0).randbytes(MB)
FTYP = bytes.fromhex("00000018") + b"ftypisom" + bytes.fromhex("00000200") + b"isomavc1"


def serve(size: int) -> ThreadingHTTPServer:
    """A server for the metadata, the thumbnail and a ``size``-byte MP4 streamed from one
    1 MiB block (an ftyp box, then one mdat box declaring the rest)."""
    meta = {"title": "bench video", "duration": 600.0, "formats": [
        {"format_id": "mp4-1080", "url": "http://media.test/v/big.mp4", "ext": "mp4",
         "width": 1920, "height": 1080, "vcodec": "avc1", "acodec": "mp4a", "protocol": "http"}]}
    meta_body = json.dumps(meta).encode()
    mdat = (size - len(FTYP)).to_bytes(4, "big") + b"mdat"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/api/big.json":
                self._head(len(meta_body), "application/json")
                self.wfile.write(meta_body)
                return
            if self.path != "/v/big.mp4":
                self.send_error(404)
                return
            self._head(size, "video/mp4")
            first = FTYP + mdat
            self.wfile.write(first)
            left = size - len(first)
            try:
                while left > 0:
                    piece = BLOCK[: min(left, len(BLOCK))]
                    self.wfile.write(piece)
                    left -= len(piece)
            except (BrokenPipeError, ConnectionResetError):
                return

        def _head(self, length: int, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def archive(port: int, root: str, size: int) -> dict[str, Any]:
    """Runs in the measured child: archive the page through the pipeline, return the record."""
    from archiver.fetch.video import VideoFetcher
    from archiver.models import Asset
    from archiver.pipeline import archive_asset, build_context
    from archiver.settings import FetchSettings, Settings, StoreSettings, VideoSettings
    from archiver.store import open_store
    from tests.support.ytdlp_extractor import LocalVideoIE

    settings = Settings(
        fetch=FetchSettings(
            allow_private=["127.0.0.0/8"],
            connect_to=[f"video.test:80:127.0.0.1:{port}", f"media.test:80:127.0.0.1:{port}"],
            max_bytes_video=size + MB),
        video=VideoSettings(temp_dir=f"{root}/tmp"),
        store=StoreSettings(url=f"{root}/store"),
    )
    with open_store(settings.store) as store, build_context(settings, store, extra_fetchers=[
            VideoFetcher(settings, extra_extractors=[LocalVideoIE])]) as ctx:
        record = archive_asset(Asset(origin="http://video.test/watch/big", kind="video"), ctx)
    return record.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the archive directory")
    args = parser.parse_args(argv)
    size = args.size_mb * MB
    root = tempfile.mkdtemp(prefix="archiver-bench-video-")
    Path(root, "tmp").mkdir()
    server = serve(size)
    try:
        record, m = measure_call(f"video {args.size_mb} MB", archive, server.server_address[1],
                                 root, size)
        m = m.with_counts(1, record.get("size") or 0, status=record["status"])
        print(m.line(unit="videos"))
        print(json.dumps(m.to_dict()))
        leftovers = list(Path(root, "tmp").iterdir())
        ok = record["status"] == "archived" and record["size"] == size and not leftovers
        print(f"record: status={record['status']} size={record['size']} "
              f"related={sorted(record['related'])} temp leftovers={len(leftovers)}")
        print(f"peak RSS {m.peak_rss / MB:.0f} MB (limit {LIMIT_MB} MB): "
              f"{'OK' if m.peak_rss < LIMIT_MB * MB and ok else 'FAIL'}")
        return 0 if ok and m.peak_rss < LIMIT_MB * MB else 1
    finally:
        server.shutdown()
        server.server_close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
