"""The rules every setting obeys, whichever source gave it (file, environment, command line).

Rules go by field name, so a field added to a settings section is checked without a line of its
own: a number is never negative; timeouts, deadlines, time limits, TTLs, intervals and rates are
> 0; concurrency, connection, fragment, batch, delivery and process counts and byte/pixel caps
are >= 1;
``*_url`` fields and proxies must parse as URLs of their scheme (ports 1-65535); ``connect_to``
entries are curl's ``HOST:PORT:TARGET:TPORT``; ``allow_private`` entries are CIDRs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic_core import PydanticCustomError

from archiver.errors import ConfigError

# (suffixes, prefixes) of field names whose numbers must be > 0 or >= 1; any other number >= 0.
POSITIVE = (("timeout", "deadline", "time_limit", "_ttl", "interval", "rate"), ())
AT_LEAST_ONE = (("concurrency", "connections", "fragments", "_batch", "deliveries", "processes"),
                ("max_bytes", "max_pixels", "multipart_", "max_article_bytes"))

# URL fields and the schemes they take.
URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "broker_url": ("redis", "rediss", "unix"),
    "redis_url": ("redis", "rediss", "unix"),
    "endpoint_url": ("http", "https"),
    "endpoint": ("http", "https"),  # the Wayback Machine
    "public_base_url": ("http", "https"),
    "base_url": ("http", "https"),
    "egress_proxy": ("http", "https", "socks5", "socks5h"),
    "prefix": ("http", "https"),  # mirrors
    "replace": ("http", "https"),
    "link": ("http", "https"),  # [[scan.links]] examples
    "original": ("http", "https"),
}


def check_field(name: str, value: Any) -> Any:
    """``value`` if it obeys the rule for a field called ``name``; raises a pydantic error with
    a one-line message otherwise."""
    if value is None:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(name, value)
    elif isinstance(value, str) and name in URL_SCHEMES:
        _fail_unless(parse_url_error(value, URL_SCHEMES[name]))
    elif isinstance(value, str) and name == "url":  # the store
        _fail_unless(store_url_error(value))
    elif isinstance(value, str) and name == "user_agent" and not value.isprintable():
        raise PydanticCustomError("rule", "must be printable (it is sent as a header)")
    elif name == "connect_to" and isinstance(value, list):
        for entry in value:
            try:
                ConnectTo.parse(entry)
            except ConfigError as exc:
                raise PydanticCustomError("rule", "{problem}", {"problem": exc.message}) from exc
    elif name == "allow_private" and isinstance(value, list):
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise PydanticCustomError("rule", "{entry!r} is not a CIDR",
                                          {"entry": entry}) from exc
    return value


def _check_number(name: str, value: float) -> None:
    if name.endswith(POSITIVE[0]):
        if not value > 0:
            raise PydanticCustomError("rule", "must be > 0")
    elif name.endswith(AT_LEAST_ONE[0]) or name.startswith(AT_LEAST_ONE[1]):
        if not value >= 1:
            raise PydanticCustomError("rule", "must be ≥ 1")
    elif not value >= 0:
        raise PydanticCustomError("rule", "must be ≥ 0")


def _fail_unless(problem: str | None) -> None:
    if problem is not None:
        raise PydanticCustomError("rule", "{problem}", {"problem": problem})


def parse_url_error(text: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``text`` is not a URL of one of ``schemes`` (None when it is)."""
    expected = f"expected {'|'.join(schemes)}://HOST[:PORT]/..."
    if any(c.isspace() or ord(c) < 32 for c in text):
        return f"not a URL ({expected}): contains whitespace or control characters"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({expected}): {exc}"
    if parts.scheme not in schemes:
        return f"not a URL ({expected})"
    if parts.scheme == "unix":
        return None if parts.path else f"not a URL ({expected}): no socket path"
    if not parts.hostname:
        return f"not a URL ({expected}): no host"
    if port == 0:
        return "port must be 1-65535"
    return None


def store_url_error(text: str) -> str | None:
    """Why ``text`` is not a store location (a path, file:// or s3://bucket/prefix)."""
    if not text.strip():
        return "empty store URL"
    if "\x00" in text:
        return "contains a NUL character"
    if "://" not in text:
        return None
    scheme = text.split("://", 1)[0].lower()
    if scheme == "file":
        return None
    if scheme != "s3":
        return "unsupported store URL (use a path, file:// or s3://bucket/prefix)"
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return f"not an s3://bucket/prefix URL: {exc}"
    if not parts.netloc or parts.query or parts.fragment:
        return "not an s3://bucket/prefix URL"
    return None


@dataclass(frozen=True)
class ConnectTo:
    """One curl-style ``HOST:PORT:TARGET_HOST:TARGET_PORT`` rule; empty HOST/PORT match any."""

    host: str
    port: int | None
    target_host: str
    target_port: int | None

    _PART = r"(\[[^\]]*\]|[^:\[\]]*)"
    _RE = re.compile(rf"^{_PART}:(\d*):{_PART}:(\d*)$")

    @classmethod
    def parse(cls, text: str) -> ConnectTo:
        """Raises ConfigError unless ``text`` is HOST:PORT:TARGET_HOST:TARGET_PORT with ports
        1-65535 (or empty)."""
        m = cls._RE.match(text.strip()) if isinstance(text, str) else None
        if not m:
            raise ConfigError(f"{text!r} is not HOST:PORT:TARGET_HOST:TARGET_PORT")
        host, port, thost, tport = m.groups()
        for value in (port, tport):
            if value and not 1 <= int(value) <= 65535:
                raise ConfigError(f"{text!r}: port {int(value)} is not in 1-65535")
        return cls(
            host=host.strip("[]").lower(),
            port=int(port) if port else None,
            target_host=thost.strip("[]"),
            target_port=int(tport) if tport else None,
        )

    def applies(self, host: str, port: int) -> bool:
        return (not self.host or self.host == host.lower()) and (
            self.port is None or self.port == port
        )
