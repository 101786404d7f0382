"""What a WARC needs from an HTTP fetch: the request line and headers sent, the status line and
headers received, kept as JSON primitives in the record (``Record.exchange``).

Headers are kept in the order and case they were sent or received, decoded as Latin-1 (what
HTTP/1.1 puts on the wire), and bounded: at most MAX_HEADERS headers and MAX_HEADER_BYTES bytes
per message, each value cut at MAX_VALUE_BYTES; a message that did not fit says
``"truncated": true`` (the export then writes a ``resource`` record, not a partial response).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        # _latin1 inline: a call per header was most of this loop's cost
        text = value[:MAX_VALUE_BYTES].decode("latin-1")
        long = len(value) > MAX_VALUE_BYTES
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
    return exchange_of(request.method, request.url.raw_path, list(request.headers.raw),
                       resp.http_version or "HTTP/1.1", resp.status_code, resp.reason_phrase,
                       list(resp.headers.raw))


def exchange_of(method: str, raw_target: bytes, sent_raw: list[tuple[bytes, bytes]],
                version: str, status: int, reason: str,
                received_raw: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The exchange from its parts as they went over the wire (one HTTP version for both)."""
    target, long_target = _latin1(raw_target, MAX_TARGET_BYTES)
    sent, sent_cut = _headers(sent_raw)
    received, received_cut = _headers(received_raw)
    return {
        "request": {"method": method, "target": target, "version": version,
                    "headers": sent, "truncated": sent_cut or long_target},
        "response": {"version": version, "status": status,
                     "reason": reason, "headers": received,
                     "truncated": received_cut},
    }
