"""Real services started on free ports for the test session: redis-server and moto's S3."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from archiver.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class RedisServer:
    """A private redis-server on a free port that a test can stop (SIGTERM or SIGKILL) and
    start again on the same port and data directory. ``aof`` turns on the append-only file
    (``everysec``, as the compose stack runs it), so queued messages survive a restart.
    Fails (never skips) when the binary is missing: .ci/run installs it."""

    def __init__(self, aof: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.binary = binary
        self.aof = aof
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="archiver-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        persistence = (["--appendonly", "yes", "--appendfsync", "everysec"] if self.aof
                       else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", self.workdir, "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server with ``sig`` (SIGTERM: a clean shutdown that flushes the AOF;
        SIGKILL: a crash) and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self.proc = None

    def blink(self, sig: int, seconds: float) -> None:
        """Stop the server with ``sig``, leave it down ``seconds``, start it again on the same
        port and data directory (with AOF, what it had persisted comes back)."""
        self.kill(sig)
        time.sleep(seconds)
        self.start()

    def wipe_restart(self, down: float) -> None:
        """Redis loses its data: SIGKILL, its AOF and RDB files deleted, down ``down``
        seconds, then started again empty on the same port (a restart without persistence)."""
        self.kill(signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        time.sleep(down)
        self.start()

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def redis_server(aof: bool = False) -> Iterator[str]:
    """A private redis-server on a free port; yields its URL."""
    server = RedisServer(aof=aof)
    try:
        yield server.start().url
    finally:
        server.close()


@contextmanager
def flushed(settings: Settings) -> Iterator[redis.Redis]:
    """A client for the settings' coordination Redis, its database emptied before and after
    (each test module that shares the session's server takes a database of its own)."""
    from archiver.drivers.coordination import connect

    client = connect(settings)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's standalone server over HTTP on a free port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def counting_moto_s3() -> Iterator[tuple[str, Any]]:
    """moto's server over HTTP, each request it serves counted by method and what its key
    names (bench.s3server.Counting: ``media``, ``records``, ``markers``, ...); yields the
    endpoint and the counter (``.counts``, a Counter of ``"PUT media"``...)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from bench.s3server import Counting

    app = Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", app
    finally:
        server.shutdown()
        thread.join()
