"""A real reverse proxy in front of the moto server, for what moto alone cannot play: an
S3-compatible server without conditional writes (501 to ``If-None-Match``), connections kept
alive (moto closes each one after its answer; S3 keeps them), a server that closes idle
connections without a word, HTTPS, and S3's check of a body against its signed sha256."""

from __future__ import annotations

import hashlib
import http.client
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

NOT_IMPLEMENTED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
                   b"<Message>A header you provided implies functionality that is not "
                   b"implemented</Message></Error>")
SHA256_MISMATCH = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>XAmzContentSHA256Mismatch'
                   b"</Code><Message>The provided 'x-amz-content-sha256' header does not match "
                   b"what was computed.</Message></Error>")


class S3Relay:
    """Forwards each request to ``upstream`` (one connection each) and answers its client
    with HTTP/1.1 keep-alive. ``refuse_conditional``: any request carrying If-None-Match gets
    501 NotImplemented instead. ``drop_idle``: the connection is closed after each answer
    (no ``Connection: close``: as a server whose idle timeout ran out). ``ssl_context``:
    HTTPS. A body whose sha256 is not its ``x-amz-content-sha256`` gets S3's 400 (moto does
    not check). Counts requests refused, forwarded, and connections accepted."""

    def __init__(self, upstream: str, *, refuse_conditional: bool = False,
                 drop_idle: bool = False, ssl_context: ssl.SSLContext | None = None) -> None:
        target = urlsplit(upstream)
        self.rejected = 0
        self.forwarded = 0
        self.connections = 0
        self.drop_idle = drop_idle
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                relay.connections += 1

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.close_connection = relay.drop_idle

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                signed = self.headers.get("x-amz-content-sha256", "")
                refusal: tuple[int, bytes] | None = None
                if refuse_conditional and "If-None-Match" in self.headers:
                    refusal = (501, NOT_IMPLEMENTED)
                elif re.fullmatch(r"[0-9a-f]{64}", signed) \
                        and hashlib.sha256(body).hexdigest() != signed:
                    refusal = (400, SHA256_MISMATCH)
                if refusal is not None:
                    relay.rejected += 1
                    self._answer(refusal[0], [("Content-Type", "application/xml")], refusal[1])
                    return
                relay.forwarded += 1
                conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self._answer(resp.status, [
                    (name, value) for name, value in resp.getheaders()
                    if name.lower() not in ("content-length", "connection", "transfer-encoding",
                                            "server", "date")], data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
