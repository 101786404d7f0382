"""Frozen, JSON-friendly dataclasses passed between stages, to Celery and to the manifest."""

from __future__ import annotations

import copy
import functools
import hashlib
import operator
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

Kind = Literal["image", "gif", "video"]
Status = Literal["archived", "failed", "skipped"]
KINDS: tuple[Kind, ...] = ("image", "gif", "video")  # from the least to the most specific

RECORD_VERSION = 1
T = TypeVar("T")


def filled_at_once(cls: type[T]) -> type[T]:
    """``cls`` (a frozen dataclass of plain defaults) with an ``__init__`` that sets the
    instance's dict in one step instead of field by field through ``object.__setattr__``, as
    the frozen dataclass's does: the scanner builds thousands a second. Same signature and
    defaults; equality, hashing, ``replace``, pickling and immutability are the dataclass's."""
    params, items = [], []
    defaults: dict[str, object] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        assert f.default_factory is MISSING and f.init and not f.kw_only, f.name
        if f.default is MISSING:
            params.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        items.append(f"{f.name!r}: {f.name}")
    source = (f"def __init__(self, {', '.join(params)}):\n"
              f"    _set(self, '__dict__', {{{', '.join(items)}}})\n")
    namespace: dict[str, Any] = {}
    # Code made from the field names alone, as dataclasses makes its own __init__.
    exec(source, {"_set": object.__setattr__, **defaults}, namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {**cls.__init__.__annotations__}
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@functools.lru_cache(maxsize=8192)
def asset_id(origin: str) -> str:
    """The stable id of an asset: sha256 of its canonical origin URL (remembered for the
    origins of the last few thousand calls: a record, its asset and the manifest ask for it a
    dozen times each)."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def stronger_kind(a: Kind, b: Kind) -> Kind:
    """The more specific of two kinds (video over gif over image): one origin seen as several
    kinds is the most specific of them."""
    return a if KINDS.index(a) >= KINDS.index(b) else b


def now_iso() -> str:
    """The time records and attempts carry: UTC, ISO 8601, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@filled_at_once
@dataclass(frozen=True)
class Reference:
    """One media origin that one article points at, with every place it appears."""

    article: str
    where: tuple[str, ...]
    kind: Kind
    url: str
    origin: str
    proxy: str | None = None
    alternates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "article": self.article,
            "where": list(self.where),
            "kind": self.kind,
            "url": self.url,
            "origin": self.origin,
            "proxy": self.proxy,
            "alternates": list(self.alternates),
        }


@filled_at_once
@dataclass(frozen=True)
class Skipped:
    """A URL-like value that is not a fetchable reference (data:, javascript:, relative...)."""

    article: str
    where: str
    value: str
    reason: str


@filled_at_once
@dataclass(frozen=True)
class ArticleScan:
    """Everything the scanner learned from one article."""

    article: str
    path: str
    references: tuple[Reference, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()
    title: str | None = None
    date: str | None = None  # the front matter's date, as written


@dataclass(frozen=True)
class Citation:
    """An article that references an asset, and where; ``date`` is the article's own date
    (ISO 8601 UTC, from its front matter), which the wayback route aims its capture at."""

    article: str
    where: tuple[str, ...]
    date: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"article": self.article, "where": list(self.where)}
        if self.date is not None:
            out["date"] = self.date
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Citation:
        date = data.get("date")
        return cls(data["article"], tuple(data.get("where", ())),
                   date if isinstance(date, str) else None)


@dataclass(frozen=True)
class Asset:
    """The unit of work: one canonical origin, unique across all articles."""

    origin: str
    kind: Kind
    proxies: tuple[str, ...] = ()
    alternates: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    citations: tuple[Citation, ...] = ()
    # When archiver first recorded the asset (its record's created_at), if it has a record.
    first_seen: str | None = None

    @property
    def id(self) -> str:
        return asset_id(self.origin)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "origin": self.origin,
            "kind": self.kind,
            "proxies": list(self.proxies),
            "alternates": list(self.alternates),
            "urls": list(self.urls),
            "citations": [c.to_dict() for c in self.citations],
        }
        if self.first_seen is not None:
            out["first_seen"] = self.first_seen
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Asset:
        return cls(
            origin=data["origin"],
            kind=data["kind"],
            proxies=tuple(data.get("proxies", ())),
            alternates=tuple(data.get("alternates", ())),
            urls=tuple(data.get("urls", ())),
            citations=tuple(Citation.from_dict(c) for c in data.get("citations", ())),
            first_seen=data.get("first_seen"),
        )


@dataclass(frozen=True)
class Attempt:
    """One try of one route: what was requested and how it ended."""

    route: str
    url: str
    status: int | None = None
    error: dict[str, Any] | None = None
    elapsed: float = 0.0
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        # What dataclasses.asdict gave, without its walk over the fields: the error is a
        # JSON object, copied as asdict copied it (the caller may change what it gets).
        return {"route": self.route, "url": self.url, "status": self.status,
                "error": copy.deepcopy(self.error) if self.error is not None else None,
                "elapsed": self.elapsed, "at": self.at}


@dataclass(frozen=True)
class Record:
    """The manifest entry for one asset."""

    origin: str
    kind: Kind
    status: Status
    key: str | None = None
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    duration: float | None = None
    route: str | None = None
    fetched_url: str | None = None
    http_status: int | None = None
    attempts: tuple[Attempt, ...] = ()
    error: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()
    alternates: tuple[str, ...] = ()
    citations: tuple[Citation, ...] = ()
    related: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # The HTTP request and response headers of the fetch that produced the bytes (see
    # fetch/exchange.py); None in records written before it was kept, and for video pages.
    exchange: dict[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""
    version: int = RECORD_VERSION

    @property
    def id(self) -> str:
        return asset_id(self.origin)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        out.update(zip(_RECORD_FIELDS, _RECORD_VALUES(self), strict=True))  # one C call
        # The tuple fields as lists, in their places (a key set again keeps its place).
        out["attempts"] = [a.to_dict() for a in self.attempts]
        out["citations"] = [c.to_dict() for c in self.citations]
        out["urls"] = list(self.urls)
        out["alternates"] = list(self.alternates)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = _RECORD_NAMES
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        kwargs["attempts"] = tuple(Attempt(**a) for a in data.get("attempts", ()))
        kwargs["citations"] = tuple(Citation.from_dict(c) for c in data.get("citations", ()))
        kwargs["urls"] = tuple(data.get("urls", ()))
        kwargs["alternates"] = tuple(data.get("alternates", ()))
        return cls(**kwargs)


_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_RECORD_NAMES = frozenset(_RECORD_FIELDS)
_RECORD_VALUES = operator.attrgetter(*_RECORD_FIELDS)
