"""What both GET paths (the lean one, get.py; httpx's, transport.py) share about a hop: the
timeouts of a try, the per-host slot held around each hop, and which answers redirect.

Standard library only, so that the lean path never loads httpx or httpcore.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from archiver.settings import FetchSettings

REDIRECTS = (301, 302, 303, 307, 308)
Slot = Callable[[str], AbstractContextManager[None]]


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
