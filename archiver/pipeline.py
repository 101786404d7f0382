"""The one place the stages are chained: fetch -> store -> record, for one asset.

``fetch_asset`` (the plan says the asset is not archived: the in-process runner) and
``archive_asset`` (look for an archived record first: the Celery task, whose message may come
twice) are what the drivers call. Neither raises for a problem with the asset (fetch, type,
size, storing its bytes): the returned Record says what happened and the manifest keeps it.
Only a failure to save the record itself (StoreError from the manifest) propagates, so the
driver can retry the whole asset, and so does the refusal of a store that cannot take writes
yet (``Store.ready_for_writes``: full or read-only), before anything is fetched; so do the
exceptions the driver handles itself
(``Context.passthrough``, e.g. Celery's soft time limit).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Self
from urllib.parse import quote

from archiver.errors import ArchiverError, InternalError, StoreError, Unsupported
from archiver.fetch.base import Blob, Fetched, Fetcher
from archiver.fetch.limits import HostLimiter
from archiver.fetch.sniff import recorded_kind
from archiver.manifest import Manifest
from archiver.models import Asset, Attempt, Record, Status, now_iso
from archiver.settings import Settings
from archiver.store.base import Store
from archiver.store.keys import media_key

log = logging.getLogger(__name__)

# Facts a fetcher reports that have a field of their own in the Record.
_RECORD_FACTS = ("width", "height", "frames", "duration")
# The source URL in an object's metadata: quoted with these kept; a URL made only of them and
# of what quote() never changes is kept as it is, without the call.
_URL_SAFE = ":/?&=%#@+,;~"
_URL_AS_IS = re.compile(r"[A-Za-z0-9_.\-~:/?&=%#@+,;]*")


@dataclass
class Context:
    """What archiving needs, built once per process and shared by its threads. It closes the
    fetchers it holds (``with build_context(...) as ctx:``); the store stays with whoever
    opened it."""

    settings: Settings
    store: Store
    manifest: Manifest
    fetchers: Sequence[Fetcher] = field(default_factory=list)
    # Exceptions the driver handles itself (Celery's soft time limit): raised, not recorded
    # as an internal error.
    passthrough: tuple[type[BaseException], ...] = ()

    def fetcher_for(self, asset: Asset) -> Fetcher | None:
        return next((f for f in self.fetchers if f.matches(asset)), None)

    def close(self) -> None:
        for fetcher in self.fetchers:
            fetcher.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_context(
    settings: Settings,
    store: Store,
    *,
    manifest: Manifest | None = None,
    limiter: HostLimiter | None = None,
    extra_fetchers: Sequence[Fetcher] = (),
    passthrough: tuple[type[BaseException], ...] = (),
) -> Context:
    """A Context over ``store`` (and its ``manifest``, when the caller has one already) with
    the standard fetchers, video pages first so the HTTP fetcher gets everything else; both
    share one SSRF guard."""
    from archiver.fetch.guard import Guard
    from archiver.fetch.http import HttpFetcher
    from archiver.fetch.video import VideoFetcher

    guard = Guard(settings.fetch.allow_private, settings.fetch.connect_to)
    fetchers: list[Fetcher] = [
        *extra_fetchers,
        VideoFetcher(settings, guard=guard),
        HttpFetcher(settings, limiter=limiter, guard=guard),
    ]
    return Context(settings, store, manifest if manifest is not None else Manifest(store),
                   fetchers, passthrough)


def archive_asset(asset: Asset, ctx: Context) -> Record:
    """``fetch_asset`` unless the asset is archived already (record present and object
    present): then it is not fetched again, and its record gains the new citations."""
    existing = ctx.manifest.load_file(asset.id)
    if existing is not None and existing.status == "archived" and existing.key \
            and ctx.store.exists(existing.key):
        return ctx.manifest.save(_base_record(asset, "archived", existing))
    if existing is not None and existing.created_at and asset.first_seen is None:
        asset = replace(asset, first_seen=existing.created_at)  # the wayback route's aim
    return fetch_asset(asset, ctx)


def fetch_asset(asset: Asset, ctx: Context, *, fresh: bool = False) -> Record:
    """Fetch ``asset``, store its bytes (and related objects) content-addressed, save and return
    its Record, without looking for a record first (the caller's plan found the asset not
    archived). ``fresh``: the plan found no record at all, so it is saved create-only."""
    # A store that refused a write for want of room or permission raises that again here, while
    # it would still refuse: bytes fetched now could not be kept (the caller retries later).
    ctx.store.ready_for_writes()
    attempts: list[Attempt] = []
    started = now_iso()
    fetcher = ctx.fetcher_for(asset)
    try:
        if fetcher is None:
            raise Unsupported(f"no fetcher handles {asset.origin}")
        fetched = fetcher.fetch(asset, attempts)
        try:
            record = _store(asset, fetched, ctx, attempts, started)
        finally:
            fetched.close()
    except ArchiverError as exc:
        record = failure_record(asset, exc, attempts, started=started)
    except Exception as exc:  # a bug must not end a run of thousands of assets
        if isinstance(exc, ctx.passthrough):
            raise
        log.exception("unexpected error archiving %s", asset.origin)
        error = InternalError(f"{type(exc).__name__}: {exc}")
        record = failure_record(asset, error, attempts, started=started)
    return ctx.manifest.save(record, fresh=fresh)


def _store(asset: Asset, fetched: Fetched, ctx: Context, attempts: list[Attempt],
           started: str) -> Record:
    facts = dict(fetched.facts)
    # What a lost record is rebuilt from after a crash (manifest/recovery.py): in the object's
    # metadata, stored by the same request.
    about = {"asset-id": asset.id, "route": fetched.route or "",
             **{name: str(facts[name]) for name in _RECORD_FACTS if facts.get(name) is not None}}
    key = _put(ctx.store, fetched.blob, asset.origin, about)
    related = {name: _put(ctx.store, blob, asset.origin,
                          {"asset-id": asset.id, "related": name})
               for name, blob in fetched.related.items()}
    # One Record built at once (dataclasses.replace of a base record built it twice).
    return Record(
        origin=asset.origin,
        kind=recorded_kind(asset.kind, asset.origin, fetched.blob.media_type),
        status="archived",
        urls=asset.urls,
        alternates=asset.alternates,
        citations=asset.citations,
        attempts=tuple(attempts),
        created_at=started,
        updated_at=now_iso(),
        key=key,
        sha256=fetched.blob.sha256,
        size=fetched.blob.size,
        content_type=fetched.blob.media_type,
        route=fetched.route,
        fetched_url=fetched.url,
        http_status=fetched.http_status,
        exchange=fetched.exchange,
        related=related,
        extra={k: v for k, v in facts.items() if k not in _RECORD_FACTS},
        width=facts.get("width"),
        height=facts.get("height"),
        frames=facts.get("frames"),
        duration=facts.get("duration"),
    )


def _put(store: Store, blob: Blob, source: str, about: dict[str, str]) -> str:
    key = media_key(blob.sha256, blob.ext)
    blob.file.seek(0)
    source_url = source if _URL_AS_IS.fullmatch(source) else quote(source, safe=_URL_SAFE)
    metadata = {"sha256": blob.sha256, "source-url": source_url, **about}
    try:
        store.put(key, blob.file, blob.size, blob.media_type, metadata)
    except OSError as exc:
        raise StoreError(f"cannot store {key}: {exc}") from exc
    return key


def _base_record(asset: Asset, status: Status, existing: Record | None) -> Record:
    now = now_iso()
    if existing is not None:
        return replace(existing, urls=asset.urls, alternates=asset.alternates,
                       citations=asset.citations, updated_at=now)
    return Record(origin=asset.origin, kind=asset.kind, status=status, urls=asset.urls,
                  alternates=asset.alternates, citations=asset.citations, created_at=now,
                  updated_at=now)


def failure_record(asset: Asset, error: ArchiverError, attempts: Sequence[Attempt] = (), *,
                   started: str | None = None) -> Record:
    """The record of an asset that failed with ``error`` after ``attempts`` (none when it
    failed outside a fetch): ``skipped`` when no fetcher could even try it, else ``failed``.
    The stored error is ``error.to_dict()``; its ``retryable`` is written for people and older
    readers, decisions read the class back (``errors.class_of``)."""
    last_status = next((a.status for a in reversed(attempts) if a.status is not None), None)
    status: Status = "skipped" if isinstance(error, Unsupported) and not attempts else "failed"
    stored = {**error.to_dict(), "retryable": error.retryable}
    now = now_iso()
    return Record(origin=asset.origin, kind=asset.kind, status=status, urls=asset.urls,
                  alternates=asset.alternates, citations=asset.citations,
                  attempts=tuple(attempts), error=stored, http_status=last_status,
                  created_at=started or now, updated_at=now)
