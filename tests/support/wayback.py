"""A local Wayback Machine on an ``OriginServer``: the CDX server (``/cdx/search/cdx``, JSON
output, ``filter=statuscode:200``) and ``id_`` replay (``/web/<timestamp>id_/<original>``),
reached as ``web.archive.org`` through ``connect_to``.

``capture`` records one capture of a URL (its bytes, the mimetype the index says, the status it
had); ``throttle`` makes the next CDX queries answer 429 with a Retry-After. Every CDX query is
kept (``queries``) with its parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.origin import OriginServer, Response

ENDPOINT = "https://web.archive.org"


@dataclass(frozen=True)
class Capture:
    timestamp: str
    original: str
    mimetype: str
    status: str


class LocalWayback:
    def __init__(self, origin: OriginServer) -> None:
        self.origin = origin
        self.captures: list[Capture] = []
        self.queries: list[dict[str, list[str]]] = []
        self.throttled: list[float] = []  # Retry-After of each 429 still to answer
        origin.add("/cdx/search/cdx?*", Response(handler=self._cdx))

    def connect_to(self) -> str:
        return f"web.archive.org:443:127.0.0.1:{self.origin.port}"

    def capture(self, original: str, timestamp: str, body: bytes, *,
                mimetype: str = "image/jpeg", content_type: str | None = None,
                status: str = "200") -> str:
        """Record a capture of ``original``; returns its replay path."""
        self.captures.append(Capture(timestamp, original, mimetype, status))
        path = f"/web/{timestamp}id_/{original}"
        self.origin.add(path, Response(body, content_type=content_type or mimetype))
        return path

    def throttle(self, *retry_after: float) -> None:
        self.throttled.extend(retry_after)

    def _cdx(self, handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        self.queries.append(query)
        if self.throttled:
            wait = self.throttled.pop(0)
            _send(handler, 429, b"Too Many Requests", {"Retry-After": f"{wait:g}"})
            return
        url = query.get("url", [""])[0]
        fields = query.get("fl", ["timestamp,original,mimetype,statuscode,digest"])[0].split(",")
        only_ok = "statuscode:200" in query.get("filter", [])
        rows: list[list[str]] = []
        for c in sorted(self.captures, key=lambda c: c.timestamp):
            if c.original != url or (only_ok and c.status != "200"):
                continue
            values = {"timestamp": c.timestamp, "original": c.original, "mimetype": c.mimetype,
                      "statuscode": c.status, "digest": f"D{c.timestamp}"}
            rows.append([values.get(f, "-") for f in fields])
        body = json.dumps([fields, *rows]).encode() if rows else b"[]"
        _send(handler, 200, body, {"Content-Type": "application/json"})


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes,
          headers: dict[str, str]) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
