"""The HTTP blocks of request and response records, rebuilt from a record's exchange.

The stored bytes are what the body decoded to (httpx undoes Content-Encoding) and no longer
chunked, so the response headers must describe them as stored: Content-Encoding and
Transfer-Encoding are renamed ``X-Archiver-Orig-*`` and Content-Length is set to the stored size
(the value received kept as ``X-Archiver-Orig-Content-Length`` when it differs), as pywb does
for the same reason. Everything else is written as received, in order.
"""

from __future__ import annotations

import re
from typing import Any

from warcio.statusandheaders import StatusAndHeaders

ORIG = "X-Archiver-Orig-"
_RENAMED = ("content-encoding", "transfer-encoding")
_TOKEN = re.compile(r"[!-9;-~]+")  # visible ASCII but ':'
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def usable(exchange: dict[str, Any] | None) -> bool:
    """Whether the exchange is complete enough for request and response records (else the
    asset is written as a ``resource``)."""
    if not isinstance(exchange, dict):
        return False
    request, response = exchange.get("request"), exchange.get("response")
    return isinstance(request, dict) and isinstance(response, dict) \
        and not request.get("truncated") and not response.get("truncated") \
        and isinstance(response.get("status"), int)


def _pairs(raw: Any) -> list[tuple[str, str]]:
    return [(str(name), _clean(str(value))) for name, value in raw or ()
            if _token(str(name))]


def _token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def _clean(value: str) -> str:
    return _CONTROL.sub(" ", value)


def request_block(exchange: dict[str, Any]) -> StatusAndHeaders:
    request = exchange["request"]
    method = _clean(str(request.get("method") or "GET")).replace(" ", "")
    target = _clean(str(request.get("target") or "/")).replace(" ", "%20")
    version = _clean(str(request.get("version") or "HTTP/1.1")).replace(" ", "")
    return StatusAndHeaders(f"{method} {target} {version}", _pairs(request.get("headers")),
                            is_http_request=True)


def response_block(exchange: dict[str, Any], size: int) -> StatusAndHeaders:
    response = exchange["response"]
    headers: list[tuple[str, str]] = []
    length_seen = False
    for name, value in _pairs(response.get("headers")):
        lower = name.lower()
        if lower in _RENAMED and value.strip().lower() != "identity":
            headers.append((ORIG + name, value))
        elif lower == "content-length":
            if not length_seen:
                headers.append((name, str(size)))
                if value.strip() != str(size):
                    headers.append((ORIG + name, value))
            length_seen = True
        else:
            headers.append((name, value))
    if not length_seen:
        headers.append(("Content-Length", str(size)))
    status = int(response["status"])
    reason = _clean(str(response.get("reason") or ""))
    version = _clean(str(response.get("version") or "HTTP/1.1")).replace(" ", "")
    return StatusAndHeaders(f"{status} {reason}".strip(), headers, protocol=version)
