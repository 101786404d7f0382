"""The fetcher's TLS context: certifi's roots (or ``ca_bundle``), made when first needed.

Shared by the lean path (lean.py) and the httpx transport (transport.py); it imports neither
httpx nor httpcore, so a run that never takes the httpx path never loads them.
"""

from __future__ import annotations

import socket
import ssl
import threading

import certifi

from archiver.settings import FetchSettings


def ssl_context(fs: FetchSettings) -> ssl.SSLContext:
    """Verification on by default against certifi's bundle (or ``ca_bundle``)."""
    if not fs.verify_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=fs.ca_bundle or certifi.where())


class LazyTLS:
    """The fetcher's TLS context (``ssl_context``), made at the first https connection:
    loading the CA bundle costs 50-200 ms of CPU here (OpenSSL 3), which a run of http URLs
    never needs. Thread-safe; one context for all. A configured ``ca_bundle`` is loaded at
    once, so a bundle that cannot be read fails the start of the run as before, not a fetch."""

    def __init__(self, fs: FetchSettings) -> None:
        self.fs = fs
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        if fs.ca_bundle:
            self.context()

    @property
    def loaded(self) -> bool:
        return self._context is not None

    def context(self) -> ssl.SSLContext:
        context = self._context
        if context is None:
            with self._lock:
                if self._context is None:
                    self._context = ssl_context(self.fs)
                context = self._context
        return context

    def wrap_socket(self, sock: socket.socket, server_hostname: str,
                    do_handshake_on_connect: bool = True) -> ssl.SSLSocket:
        return self.context().wrap_socket(sock, server_hostname=server_hostname,
                                          do_handshake_on_connect=do_handshake_on_connect)
