"""The one error tree: every failure archiver reports is one of these, with a stable code.

    class                               code          retryable
    ArchiverError                       error         no
    ├── ConfigError                     config        no
    ├── ScanError                       scan          no
    ├── InternalError                   internal      no   (a bug, recorded per asset)
    ├── Redelivered                     redelivered   no   (the asset kept killing its workers)
    ├── WrongStore                      wrong-store   no   (the task names another store)
    ├── FetchError                      fetch         -
    │   ├── TransientFetchError         transient     yes
    │   │   ├── ConnectFailed           connect       yes
    │   │   ├── HostDown                host-down     yes  (circuit breaker: N failures in a row)
    │   │   ├── TimedOut                timeout       yes
    │   │   ├── Truncated               truncated     yes
    │   │   │   └── FragmentMissing     fragment-missing yes (an HLS/DASH fragment never arrived)
    │   │   ├── HTTPTransient           http-<n>      yes  (408, 425, 429, 5xx; carries retry_after)
    │   │   └── ExtractorFailed         extractor-error yes (one try of the extractor failed)
    │   └── PermanentFetchError         permanent     no
    │       ├── Blocked                 blocked       no   (SSRF policy, scheme)
    │       ├── NameNotFound            dns           no   (DNS says the name does not exist)
    │       ├── TooLarge                too-large     no
    │       ├── NotMedia                not-media     no
    │       ├── Placeholder             placeholder   no   (redirected to a stand-in, not the file)
    │       ├── NoCapture               no-capture    no   (the Wayback Machine has no usable one)
    │       ├── HTTPPermanent           http-<n>      no   (403, 404, 410, other 4xx)
    │       ├── TooManyRedirects        redirects     no
    │       ├── BadEncoding             bad-encoding  no   (unsupported, corrupt or >2 layers)
    │       ├── Unsupported             unsupported   no
    │       ├── ExtractorExhausted      extractor-exhausted no (failed every allowed try)
    │       ├── Gone                    gone          no   (video removed or private)
    │       ├── GeoBlocked              geo-blocked   no
    │       └── DRMProtected            drm           no
    ├── StoreError                      store         yes
    │   ├── StoreUnavailable            store-unavailable yes (refused, timeout, 5xx, throttled)
    │   ├── StoreFull                   store-full    yes  (no space left; retried once freed)
    │   ├── StoreReadOnly               store-readonly yes (read-only or not writable)
    │   ├── ObjectMissing               missing       no
    │   └── StoreRejected               store-rejected no  (unsafe key, metadata too large)
    │       ├── BucketMissing           no-such-bucket no  (names the bucket)
    │       └── StoreDenied             store-denied  no   (credentials or policy refuse)
    ├── ManifestError                   manifest      no
    └── CoordinationError               coordination  yes  (Redis for claims, host limits, progress)

Foreign errors (httpx, botocore, yt-dlp) are mapped to this tree in one place per backend and
chained with ``from``. ``retryable`` and ``exit_code`` belong to the class, never to one
instance: Celery retries and CLI exit codes come from the class, and a record's stored error
is read back as its class with ``class_of``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar


class ArchiverError(Exception):
    """Base of every error archiver raises on purpose."""

    code: str = "error"
    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for records and jsonl output."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: v for k, v in self.details.items() if _jsonable(v)}
        return out


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


class ConfigError(ArchiverError):
    code = "config"
    exit_code = 2


class ScanError(ArchiverError):
    code = "scan"
    exit_code = 2


class FetchError(ArchiverError):
    code = "fetch"


class TransientFetchError(FetchError):
    code = "transient"
    retryable = True

    def __init__(self, message: str = "", *, retry_after: float | None = None, **details: Any):
        super().__init__(message, **details)
        self.retry_after = retry_after


class ConnectFailed(TransientFetchError):
    code = "connect"


class HostDown(TransientFetchError):
    """The host's last connections all failed or timed out: its remaining assets fail fast
    (a later run, or a worker after the cool-down, tries again)."""

    code = "host-down"


class TimedOut(TransientFetchError):
    code = "timeout"


class Truncated(TransientFetchError):
    code = "truncated"


class FragmentMissing(Truncated):
    """A segmented video lost a fragment; storing the rest would archive a short video."""

    code = "fragment-missing"


class ExtractorFailed(TransientFetchError):
    code = "extractor-error"


class HTTPTransient(TransientFetchError):
    def __init__(self, status: int, message: str = "", *, retry_after: float | None = None):
        super().__init__(message or f"HTTP {status}", retry_after=retry_after, status=status)
        self.status = status
        self.code = f"http-{status}"


class PermanentFetchError(FetchError):
    code = "permanent"


class ExtractorExhausted(PermanentFetchError):
    """The extractor failed on every try the video settings allow: not retried any more."""

    code = "extractor-exhausted"


class Blocked(PermanentFetchError):
    code = "blocked"


class NameNotFound(PermanentFetchError):
    """DNS answered that the name does not exist: permanent for the run, not retried."""

    code = "dns"


class TooLarge(PermanentFetchError):
    code = "too-large"


class NotMedia(PermanentFetchError):
    code = "not-media"


class Placeholder(PermanentFetchError):
    """The request was redirected to a stand-in (the site's root, an image named like 404 or
    placeholder) instead of the file: the original is gone there."""

    code = "placeholder"


class NoCapture(PermanentFetchError):
    """The Wayback Machine lists no capture of the original that could be media."""

    code = "no-capture"


class TooManyRedirects(PermanentFetchError):
    code = "redirects"


class BadEncoding(PermanentFetchError):
    """A Content-Encoding not decoded here, more layers than accepted, or a corrupt stream."""

    code = "bad-encoding"


class Unsupported(PermanentFetchError):
    code = "unsupported"


class Gone(PermanentFetchError):
    code = "gone"


class GeoBlocked(PermanentFetchError):
    code = "geo-blocked"


class DRMProtected(PermanentFetchError):
    code = "drm"


class HTTPPermanent(PermanentFetchError):
    def __init__(self, status: int, message: str = ""):
        super().__init__(message or f"HTTP {status}", status=status)
        self.status = status
        self.code = f"http-{status}"


class WrongStore(ArchiverError):
    """A task was enqueued for another store than the one its worker serves: the worker refuses
    it (one store per fleet) and the enqueuer reports it."""

    code = "wrong-store"


class StoreError(ArchiverError):
    code = "store"
    retryable = True


class ManifestError(ArchiverError):
    code = "manifest"


def http_error(status: int, retry_after: float | None = None) -> FetchError:
    """The error for an HTTP status that is not a success."""
    if status in (408, 425, 429) or status >= 500:
        return HTTPTransient(status, retry_after=retry_after)
    return HTTPPermanent(status)


class ObjectMissing(StoreError):
    code = "missing"
    retryable = False


class InternalError(ArchiverError):
    """A bug: an exception archiver did not expect, recorded per asset instead of ending a run."""

    code = "internal"


class Redelivered(ArchiverError):
    """The asset's task started ``celery.max_deliveries`` times without finishing (each time its
    worker died): it is failed instead of killing yet another worker."""

    code = "redelivered"


class StoreRejected(StoreError):
    """The store refused the request for a reason retrying cannot fix: an unsafe key, a
    missing bucket, denied access, metadata too large."""

    code = "store-rejected"
    retryable = False


class StoreUnavailable(StoreError):
    """The store did not answer or answered "later": connection refused or reset, timeouts,
    5xx, throttling. Retrying with backoff fixes it once the store is back."""

    code = "store-unavailable"


class StoreFull(StoreError):
    """No space left on the store's file system. Retryable: freeing space fixes it, and the
    in-process runner stops at the first one instead of failing every remaining asset; a
    worker retries the asset as an outage, fetching nothing while the store still refuses
    (``Store.ready_for_writes``)."""

    code = "store-full"


class StoreReadOnly(StoreError):
    """The store's file system is read-only or not writable by this user (same handling as
    StoreFull)."""

    code = "store-readonly"


class BucketMissing(StoreRejected):
    code = "no-such-bucket"


class StoreDenied(StoreRejected):
    code = "store-denied"


class CoordinationError(ArchiverError):
    """Redis (claims, host limits, batch progress) did not answer; retrying later can fix it."""

    code = "coordination"
    retryable = True


def class_of(error: Mapping[str, Any] | None) -> type[ArchiverError]:
    """The class of an error stored as ``ArchiverError.to_dict`` wrote it (a record's ``error``,
    an attempt's): its ``retryable`` and ``exit_code`` are what decisions read. ``http-<n>`` is
    HTTPTransient or HTTPPermanent by status; an unknown or missing code is ArchiverError
    (not retryable). Older records, which also stored a ``retryable`` key, read the same."""
    code = str((error or {}).get("code") or "")
    status = code.removeprefix("http-")
    if code.startswith("http-") and status.isdigit():
        return type(http_error(int(status)))
    found = _BY_CODE.get(code)
    if found is None and code:
        # A code not seen in the map: a class defined since it was built, or an unknown code
        # (rare: a miss costs one walk of the classes, a hit one dict lookup).
        _BY_CODE.update(_by_code())
        found = _BY_CODE.get(code)
    return found or ArchiverError


def _by_code() -> dict[str, type[ArchiverError]]:
    # Only classes that name their own code: HTTPTransient inherits "transient" from its base.
    return {cls.code: cls for cls in _subclasses(ArchiverError) if "code" in vars(cls)}


_BY_CODE: dict[str, type[ArchiverError]] = {}


def _subclasses(cls: type[ArchiverError]) -> Iterator[type[ArchiverError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
