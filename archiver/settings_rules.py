"""The building blocks of the settings: the section base that applies the validation rules to
every field, the host matcher, and the rules matched by host (proxies, link wrappers, per-host
overrides, mirrors). ``archiver.settings`` composes them into sections; ``archiver.urls``
applies the URL rules; ``FetchSettings.rule_for`` is the one place host rules are resolved."""

from __future__ import annotations

import fnmatch
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from archiver.validation import check_field

T = TypeVar("T")


class Section(BaseModel):
    """A settings section: unknown fields refused, frozen, every field checked by its rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _rules(cls, value: Any, info: ValidationInfo) -> Any:
        """The rule for this field's name (validation.py), for every field of every section."""
        return check_field(info.field_name or "", value)


def no_items() -> list[Any]:
    """An empty list, as a field's ``default_factory``: pydantic reads a factory's signature,
    and that of the builtin ``list`` is parsed from its text by the tokenizer (a regex compile,
    about 2 ms of every start-up)."""
    return []


def host_matches(host: str, pattern: str) -> bool:
    """Whether ``host`` matches a rule's glob ``pattern``: case-insensitive, a trailing dot
    ignored, ``*`` any characters (dots too: ``*.example.com`` matches ``a.b.example.com``
    but not ``example.com``), ``?`` one. The one host matcher of every rule."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower()
    # Exact names and "*.suffix" are nearly every pattern; fnmatch only for the rest.
    if "*" not in pattern and "?" not in pattern and "[" not in pattern:
        return host == pattern
    if pattern.startswith("*.") and not any(c in pattern[2:] for c in "*?["):
        return host.endswith(pattern[1:])
    return fnmatch.fnmatchcase(host, pattern)


class ProxyRule(Section):
    """How to recognise, unwrap and re-wrap one kind of image/CORS proxy.

    ``style``: ``query`` (the whole query string is the inner URL, raw or percent-encoded),
    ``param`` (the inner URL is query parameter ``param``), ``path`` (the path is
    ``/<host>/<path>`` of the inner URL, as Jetpack's i0.wp.com).
    """

    name: str
    hosts: list[str]
    style: Literal["query", "param", "path"] = "query"
    param: str = "url"
    default_scheme: str = "http"

    def matches(self, host: str) -> bool:
        return any(host_matches(host, pattern) for pattern in self.hosts)


DEFAULT_PROXIES = [
    ProxyRule(name="zfour-cors", hosts=["cors.zfour.workers.dev"], style="query"),
    ProxyRule(name="weserv", hosts=["images.weserv.nl", "wsrv.nl"], style="param", param="url"),
    ProxyRule(name="jetpack", hosts=["i0.wp.com", "i1.wp.com", "i2.wp.com", "i3.wp.com"],
              style="path"),
    ProxyRule(name="workers-dev", hosts=["*.workers.dev"], style="query"),
    # Public CORS proxies: the inner URL after a "/" of the path (CORS-anywhere and its
    # kind), or as the query.
    ProxyRule(name="cors-anywhere", hosts=["cors-anywhere.herokuapp.com",
                                           "thingproxy.freeboard.io", "cors.bridged.cc",
                                           "proxy.cors.sh", "cors.eu.org"], style="query"),
    ProxyRule(name="corsproxy-io", hosts=["corsproxy.io"], style="query"),
    ProxyRule(name="allorigins", hosts=["api.allorigins.win"], style="param", param="url"),
    ProxyRule(name="codetabs", hosts=["api.codetabs.com"], style="param", param="quest"),
]


class LinkExample(Section):
    """A wrapped link as an article writes it, and the media URL it carries."""

    link: str
    original: str


class LinkRule(Section):
    """A link wrapper: a page (an image viewer, an outbound-link redirector) whose query
    carries the URL it shows or leads to. A link the rule matches counts as a link to that
    inner URL; when the inner URL is an image, a thumbnail inside the link is its alternate.

    ``hosts`` and ``path`` are globs on the link's host and path (case-insensitive);
    ``style``: ``query`` (the whole query string is the inner URL) or ``param`` (query
    parameter ``param``). ``examples`` are checked: by the tests, and by every scan, which
    refuses a rule that does not unwrap its own examples (``urls.check_links``).
    """

    name: str
    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    path: str = "*"
    style: Literal["query", "param"] = "query"
    param: str = "url"
    examples: list[LinkExample] = Field(min_length=1)

    def matches(self, host: str, path: str) -> bool:
        return any(host_matches(host, pattern) for pattern in self.hosts) and \
            fnmatch.fnmatchcase(path.lower(), self.path.lower())


DEFAULT_LINKS = [
    # An image viewer page written around a thumbnail, the full-size image as its query.
    LinkRule(name="showimage", hosts=["*"], path="*/showimage/*", style="query", examples=[
        LinkExample(link="https://news.example.com/showimage/x.shtml?"
                         "https://cdn.example.com/2022/05/148.jpg",
                    original="https://cdn.example.com/2022/05/148.jpg"),
    ]),
    # OSChina's outbound-link redirector (its news posts wrap every external link in it).
    LinkRule(name="oschina-gotolink", hosts=["www.oschina.net", "oschina.net"],
             path="/action/GoToLink", style="param", param="url", examples=[
        LinkExample(link="https://www.oschina.net/action/GoToLink?url="
                         "https%3A%2F%2Fstatic.oschina.net%2Fuploads%2Fspace%2F2021%2F1.png",
                    original="https://static.oschina.net/uploads/space/2021/1.png"),
    ]),
]


class HostRule(Section):
    """Per-host overrides, matched by glob on the host; None leaves a field to the next
    matching rule, then to the default (see ``FetchSettings.rule_for``)."""

    pattern: str
    routes: list[str] | None = None
    max_concurrency: int | None = None
    rate: float | None = None  # requests per second, across all workers (distributed mode)
    egress_proxy: str | None = None


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    """What applies to one host once the rules and defaults are merged."""

    routes: tuple[str, ...]
    max_concurrency: int  # at least 1
    rate: float | None  # requests per second; None: unlimited
    egress_proxy: str | None  # None: connect directly


class Mirror(Section):
    """A prefix rewrite tried as route ``mirror``: ``prefix`` of the origin becomes ``replace``."""

    prefix: str
    replace: str


def first_set(values: Iterable[T | None], default: T) -> T:
    return next((v for v in values if v is not None), default)


# Resolved rules by settings section (its id, dropped when it is collected) and host: a section
# is frozen, so what a host resolves to never changes; the fetch path asks several times per
# asset.
_RESOLVED: dict[int, dict[str, EffectiveRule]] = {}
MAX_RESOLVED_HOSTS = 4096  # per section: past this the map starts again (a scan of many hosts)


def resolved(owner: object, host: str, resolve: Callable[[str], EffectiveRule]) -> EffectiveRule:
    """``resolve(host)``, remembered for ``owner`` (a frozen settings section)."""
    rules = _RESOLVED.get(id(owner))
    if rules is None:
        rules = _RESOLVED.setdefault(id(owner), {})
        weakref.finalize(owner, _RESOLVED.pop, id(owner), None)
    rule = rules.get(host)
    if rule is None:
        if len(rules) >= MAX_RESOLVED_HOSTS:
            rules.clear()
        rule = rules[host] = resolve(host)
    return rule
