"""What a WARC needs from an HTTP fetch: the request line and headers sent, the status line and
headers received, kept as JSON primitives in the record (``Record.exchange``).

Headers are kept in the order and case they were sent or received, decoded as Latin-1 (what
HTTP/1.1 puts on the wire), and bounded: at most MAX_HEADERS headers and MAX_HEADER_BYTES bytes
per message, each value cut at MAX_VALUE_BYTES; a message that did not fit says
``"truncated": true`` (the export then writes a ``resource`` record, not a partial response).
"""

from __future__ import annotations

from typing import Any

import httpx

MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_VALUE_BYTES = 4 * 1024
MAX_TARGET_BYTES = 8 * 1024


def _latin1(raw: bytes, cap: int) -> tuple[str, bool]:
    return raw[:cap].decode("latin-1"), len(raw) > cap


def _headers(raw: list[tuple[bytes, bytes]]) -> tuple[list[list[str]], bool]:
    kept: list[list[str]] = []
    total = 0
    cut = len(raw) > MAX_HEADERS
    for name, value in raw[:MAX_HEADERS]:
        text, long = _latin1(value, MAX_VALUE_BYTES)
        size = len(name) + len(text) + 4
        if long or total + size > MAX_HEADER_BYTES:
            cut = True
            if total + size > MAX_HEADER_BYTES:
                break
        total += size
        kept.append([name.decode("latin-1"), text])
    return kept, cut


def capture(resp: httpx.Response) -> dict[str, Any]:
    """The exchange that produced ``resp`` (the last hop of a redirect chain): request method,
    target, version and headers; response version, status, reason and headers."""
    request = resp.request
    target, long_target = _latin1(request.url.raw_path, MAX_TARGET_BYTES)
    sent, sent_cut = _headers(list(request.headers.raw))
    received, received_cut = _headers(list(resp.headers.raw))
    version = resp.http_version or "HTTP/1.1"
    return {
        "request": {"method": request.method, "target": target, "version": version,
                    "headers": sent, "truncated": sent_cut or long_target},
        "response": {"version": version, "status": resp.status_code,
                     "reason": resp.reason_phrase, "headers": received,
                     "truncated": received_cut},
    }
