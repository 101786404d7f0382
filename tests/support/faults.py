"""Faults injected into real processes: a TCP proxy that can cut a service off and restore it
(an S3 outage without losing moto's data), and a tiny file system that fills up or turns
read-only (a tmpfs mounted for the test).

Redis restarts live in ``services.RedisServer``; worker and prefork-child kills in
``workers.Worker``; hostile origin behaviours in ``hostile``.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.services import free_port


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``. ``cut()`` refuses new connections and resets
    every open one (what a client sees when a service goes down); ``restore()`` listens on
    the same port again. Counts the connections it accepted."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.accepted = 0
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True,
                                        name=f"tcp-proxy-{self.port}")
        self._thread.start()
        return self

    def cut(self) -> None:
        """Stop listening (connection refused) and reset every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _reset(conn)

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def stop(self) -> None:
        self.cut()

    @property
    def up(self) -> bool:
        return self._listener is not None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    return
                self.accepted += 1
                self._conns.update((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        """Copy both ways until both sides have closed (or the proxy is cut)."""
        other = {a: b, b: a}
        open_ends = [a, b]
        try:
            while open_ends:
                readable, _, _ = select.select(open_ends, [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if data:
                        other[sock].sendall(data)
                    else:
                        open_ends.remove(sock)
                        with contextlib.suppress(OSError):
                            other[sock].shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            pass  # reset by a cut, or by either peer
        finally:
            with self._lock:
                self._conns.difference_update((a, b))
            a.close()
            b.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a crashed peer or a dropped route looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class SmallFs:
    """A tmpfs of ``size`` bytes mounted at ``path`` (needs root, as CI runs): ``resize()``
    gives it more room, ``read_only()``/``writable()`` remount it."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def mount(self) -> SmallFs:
        if os.geteuid() != 0:
            raise RuntimeError("the store-full and read-only tests mount a tmpfs: run as root")
        self.path.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path))
        return self

    def unmount(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("umount", "-l", str(self.path))

    def resize(self, size: int) -> None:
        self.size = size
        _run("mount", "-o", f"remount,size={size}", str(self.path))

    def fill(self) -> None:
        """No room left: the file system shrinks to what it holds now (and a page)."""
        for _ in range(50):
            st = os.statvfs(self.path)
            try:  # refused while it grows past that size between the two calls: again
                _run("mount", "-o", f"remount,size={(st.f_blocks - st.f_bfree + 1) * st.f_frsize}",
                     str(self.path))
                return
            except subprocess.CalledProcessError:
                time.sleep(0.01)
        raise RuntimeError(f"{self.path} could not be filled up")

    def read_only(self) -> None:
        """Remount read-only (refused while a file is open for writing: tried again)."""
        for _ in range(500):
            try:
                _run("mount", "-o", "remount,ro", str(self.path))
                return
            except subprocess.CalledProcessError:
                time.sleep(0.01)
        _run("mount", "-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        _run("mount", "-o", "remount,rw", str(self.path))

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def small_fs(path: Path, size: int) -> Iterator[SmallFs]:
    fs = SmallFs(path, size).mount()
    try:
        yield fs
    finally:
        fs.unmount()


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)
