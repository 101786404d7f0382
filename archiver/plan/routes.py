"""The route ladder: the URLs one asset may be fetched from, in the order they are tried.

``direct`` is the origin itself; ``proxy`` re-wraps the origin in each proxy an article used
(the article's proxy worked when it was written and often still reaches hosts that refuse us);
``mirror`` applies configured prefix rewrites; ``wayback`` (when ``wayback.enabled``) asks
the Wayback Machine's CDX server for captures of the origin, and is only tried when the
earlier routes showed the original gone (see wayback.py); ``alternate`` is an image's
alternates (the thumbnail shown in place of the original), each directly then through the
article's proxies, also only for an original gone: a thumbnail is better than nothing, and the
record says which it is. The order is the origin host's ``fetch.rule_for(host).routes``. Pure:
no network.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from archiver.errors import ConfigError
from archiver.models import Asset
from archiver.settings import Settings
from archiver.urls.proxies import wrap

# The CDX fields the wayback route asks for, in this order.
CDX_FIELDS = ("timestamp", "original", "mimetype", "statuscode", "digest")


@dataclass(frozen=True)
class Route:
    """One way to fetch an asset: the route's name and the URL it requests."""

    name: str
    url: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url}


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def route_order(origin: str, settings: Settings) -> list[str]:
    """Route names for ``origin``, in the order its host's rule gives them."""
    return list(settings.fetch.rule_for(host_of(origin)).routes)


def plan_routes(asset: Asset, settings: Settings) -> list[Route]:
    """Every route to try for ``asset``, in order, without duplicate URLs. A proxy prefix that
    no rule can re-wrap any more (config changed since the scan) is left out."""
    routes: list[Route] = []
    seen: set[str] = set()

    def add(name: str, url: str) -> None:
        if url not in seen:
            seen.add(url)
            routes.append(Route(name, url))

    for name in route_order(asset.origin, settings):
        if name == "direct":
            add("direct", asset.origin)
        elif name == "proxy":
            for prefix in asset.proxies:
                try:
                    add("proxy", wrap(prefix, asset.origin, settings.scan.proxies))
                except ConfigError:
                    continue
        elif name == "mirror":
            for mirror in settings.fetch.mirrors:
                if asset.origin.startswith(mirror.prefix):
                    add("mirror", mirror.replace + asset.origin[len(mirror.prefix) :])
        elif name == "wayback" and settings.wayback.enabled:
            add("wayback", lookup_url(settings.wayback.endpoint, asset.origin,
                                      settings.wayback.cdx_limit))
        elif name == "alternate" and asset.kind == "image":  # a GIF's still is not the GIF
            for alternate in asset.alternates:
                add("alternate", alternate)
                for prefix in asset.proxies:
                    try:
                        add("alternate", wrap(prefix, alternate, settings.scan.proxies))
                    except ConfigError:
                        continue
    return routes


def lookup_url(endpoint: str, origin: str, limit: int) -> str:
    """The CDX query for the successful captures of ``origin``, one a day at most."""
    return f"{endpoint.rstrip('/')}/cdx/search/cdx?url={quote(origin, safe='')}&{_cdx_rest(limit)}"


@functools.lru_cache(maxsize=16)
def _cdx_rest(limit: int) -> str:
    """The query's parameters after ``url`` (the same for every origin: built once)."""
    return urlencode([("output", "json"), ("fl", ",".join(CDX_FIELDS)),
                      ("filter", "statuscode:200"), ("collapse", "timestamp:8"),
                      ("limit", str(limit))], quote_via=quote)
