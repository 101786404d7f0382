"""What both GET paths (the lean one, get.py; httpx's, transport.py) share about a hop: the
timeouts of a try, the per-host slot held around each hop, which answers redirect, and the one
loop that follows redirects (``follow``) over either path's hop.

Standard library only, so that the lean path never loads httpx or httpcore (a redirect's
``Location`` is joined by httpx's parser: redirects are rare enough to load it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from archiver.errors import Blocked, TooManyRedirects

if TYPE_CHECKING:
    from archiver.settings import FetchSettings

REDIRECTS = (301, 302, 303, 307, 308)
Slot = Callable[[str], AbstractContextManager[None]]


class _Fields(Protocol):
    def get(self, name: str, /) -> Any: ...


class Answered(Protocol):
    """What ``follow`` reads of a response: get.Response and httpx.Response both are."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> _Fields: ...


R = TypeVar("R", bound=Answered)
Hop = Callable[[str], AbstractContextManager[R]]


class Timeouts(NamedTuple):
    """Seconds of one try, as httpx.Timeout names them (``transport.httpx_timeout`` makes
    one): to connect, per read, per write, and ``pool``, the time left for a response to
    start."""

    connect: float
    read: float
    write: float
    pool: float


def location_of(status: int, location: str | None) -> str | None:
    """Where a response redirects to, None when it is the answer (no Location, or a status
    that is not a redirect)."""
    return location if status in REDIRECTS and location else None


def try_timeouts(fs: FetchSettings, remaining: float) -> Timeouts:
    """The timeouts of one try with ``remaining`` seconds left before its deadline: the
    settings' connect and read timeouts (writes take the read one), none past the deadline."""
    return Timeouts(connect=min(fs.connect_timeout, remaining),
                    read=min(fs.read_timeout, remaining),
                    write=min(fs.read_timeout, remaining), pool=remaining)


@contextmanager
def follow(url: str, max_redirects: int, hop: Hop[R]) -> Iterator[R]:
    """GET ``url`` following up to ``max_redirects`` redirects, one ``hop(url)`` each; yields
    the final response with its body unread. A hop checks its URL (http/https only; Blocked
    otherwise), holds its host's slot while its response is open and closes the response when
    its ``with`` ends: a redirect's before the next hop starts (a cap of 1 cannot deadlock a
    redirect to the same host), the answer's after the caller's ``with``. Raises
    TooManyRedirects, Blocked for a Location that does not parse, or what a hop raised."""
    redirects = 0
    while True:
        with hop(url) as response:
            location = location_of(response.status_code, response.headers.get("location"))
            if location is None:
                yield response
                return
        redirects += 1
        if redirects > max_redirects:
            raise TooManyRedirects(f"more than {max_redirects} redirects", url=url)
        url = joined(url, location)


def joined(url: str, location: str) -> str:
    """Where a redirect from ``url`` to ``location`` goes, joined as httpx joins (RFC 3986).
    Raises Blocked when it does not parse."""
    import httpx

    try:
        return str(httpx.URL(url).join(location))
    except (httpx.InvalidURL, ValueError, TypeError) as exc:  # IDNA errors are ValueErrors
        raise Blocked(f"invalid URL refused: {str(exc)[:200]}") from exc
