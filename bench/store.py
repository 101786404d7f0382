"""Peak RSS of this process while S3Store and LocalStore put one large file (default 500 MB),
with moto's S3 server in a separate process so its copy of the bytes is not counted.

Usage: python bench/store.py [--mb 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver.settings import MiB, StoreSettings
from archiver.store.local import LocalStore
from archiver.store.s3 import S3Store
from tests.support.services import free_port, wait_port


class PeakRSS:
    """Samples this process's RSS every 20 ms in a thread; ``peak`` is the maximum seen."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=500)
    args = parser.parse_args()
    size = args.mb * MiB
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.bin"
        with big.open("wb") as fh:
            block = os.urandom(MiB)
            for _ in range(args.mb):
                fh.write(block)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                   "-p", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            settings = StoreSettings(endpoint_url=f"http://127.0.0.1:{port}",
                                     region="us-east-1", addressing_style="path")
            store = S3Store("s3://bench-bucket/x", settings)
            store.ensure_bucket()
            base = psutil.Process().memory_info().rss
            with PeakRSS() as rss, big.open("rb") as fh:
                start = time.perf_counter()
                store.put("media/aa/" + "a" * 64 + ".mp4", fh, size, "video/mp4")
                took = time.perf_counter() - start
            print(f"s3 multipart {args.mb} MB (chunk {settings.multipart_chunksize // MiB} MiB):"
                  f" {took:.1f}s, peak RSS {rss.peak / 1e6:.0f} MB (before {base / 1e6:.0f} MB)")
        finally:
            server.terminate()
            server.wait(10)
        local = LocalStore(Path(tmp) / "archive")
        with PeakRSS() as rss, big.open("rb") as fh:
            start = time.perf_counter()
            local.put("media/aa/" + "a" * 64 + ".mp4", fh, size, "video/mp4")
            took = time.perf_counter() - start
        print(f"local {args.mb} MB: {took:.1f}s, peak RSS {rss.peak / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
