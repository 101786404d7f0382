"""A TCP server whose every connection runs a script: for the responses no well-behaved HTTP
server sends (truncated or badly chunked bodies, huge heads, drips, a keep-alive connection
closed while idle). ``script(conn, n)`` gets the accepted socket and the connection's number
(0 for the first); ``requests`` keeps every request head read with ``read_request``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

Script = Callable[[socket.socket, int], None]


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                n = self.connections
                self.connections += 1
            thread = threading.Thread(target=self._run, args=(conn, n), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket, n: int) -> None:
        try:
            self.script(conn, n)
        except OSError:
            pass
        finally:
            conn.close()

    def read_request(self, conn: socket.socket) -> bytes:
        """One request head (a GET has no body); b"" when the client closed first."""
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                return b""
            head += data
        with self._lock:
            self.requests.append(head)
        return head

    def close(self) -> None:
        self.sock.close()
        for thread in self._threads:
            thread.join(5)
