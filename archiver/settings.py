"""One typed settings object: defaults, then a TOML file, then ``ARCHIVER_*`` variables, then
command-line options.

Environment variables address any field as ``ARCHIVER_<SECTION>__<FIELD>`` (values are parsed
as JSON when they look like JSON, so lists and numbers work), plus a few short aliases that
operators expect (``ARCHIVER_BROKER_URL``, ``ARCHIVER_STORE_URL``). Secrets (S3 keys) come only
from the environment through boto3's usual credential chain, never from the file.

Per-host rules (``[[fetch.hosts]]``) have one meaning, resolved in one place
(``FetchSettings.rule_for``) for routes, limits, egress and the fleet's coordination: the
rules are read in order and **each field is taken from the first matching rule that sets it**,
else from the ``[fetch]`` default. So ``[*.myzaker.com max_concurrency=1, * routes=["proxy"]
egress_proxy=P rate=2]`` gives a myzaker host a cap of 1, routes ``["proxy"]``, proxy P and
rate 2. Host patterns (here and in ``[[scan.proxies]]``) are globs matched by ``host_matches``.

Every field is checked by the same rules whatever its source (``validation.py``: numbers,
URLs, ports, CIDRs, by field name), and a bad value is a ConfigError of one line naming its
source (``settings_sources.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, model_validator

from archiver.settings_rules import (
    DEFAULT_LINKS,
    DEFAULT_PROXIES,
    EffectiveRule,
    HostRule,
    LinkExample,
    LinkRule,
    Mirror,
    ProxyRule,
    Section,
    first_set,
    host_matches,
    no_items,
    resolved,
)
from archiver.settings_sources import Origins, env_names, lay_env, lay_file, lay_options, validate

__all__ = ["DEFAULT_LINKS", "DEFAULT_PROXIES", "EffectiveRule", "HostRule", "LinkExample",
           "LinkRule", "MiB", "Mirror", "ProxyRule", "Settings", "host_matches", "load_settings"]

MiB = 1024 * 1024

DEFAULT_USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/124.0 Safari/537.36")


class ScanSettings(Section):
    image_keys: list[str] = Field(default_factory=lambda: [
        "headimg", "thumbnail", "cover", "banner", "top_img", "og_image", "image", "images",
        "photos", "index_img", "banner_img",
    ])
    extensions: list[str] = Field(default_factory=lambda: [".md", ".markdown", ".html", ".htm"])
    max_article_bytes: int = 8 * MiB
    # Processes that scan large sets of articles (hundreds of files or more); 0: one per core.
    workers: int = 0
    # The scan cache (archiver.plan.scancache; config/archiver.toml says more). Directory:
    # None is $XDG_CACHE_HOME/archiver (else ~/.cache/archiver); LRU over cache_entries.
    cache: bool = True
    cache_dir: str | None = None
    cache_entries: int = 250_000
    proxies: list[ProxyRule] = Field(default_factory=lambda: list(DEFAULT_PROXIES))
    # Link wrappers (image viewer pages, redirectors) whose query carries the linked URL.
    links: list[LinkRule] = Field(default_factory=lambda: list(DEFAULT_LINKS))
    # Scheme given to scheme-relative "//host/path" URLs: the posts are served over https.
    default_scheme: Literal["http", "https"] = "https"
    # Base for relative URLs; None means relative URLs are skipped (reason "relative").
    base_url: str | None = None
    # Video players we cannot fetch: their iframes are skipped as "unsupported-video" (shown).
    unsupported_video_hosts: list[str] = Field(default_factory=lambda: [
        "tv.sohu.com", "*.youku.com", "player.bilibili.com", "*.youtube.com",
        "www.youtube-nocookie.com", "player.vimeo.com", "*.iqiyi.com",
    ])
    # Where the archive's own copies are served (store.public_base_url, set by Settings): a
    # reference there is skipped as "archived-copy", like any URL ending with a content address.
    _archive_bases: tuple[str, ...] = PrivateAttr(default=())

    @property
    def archive_bases(self) -> tuple[str, ...]:
        """URL prefixes of the archive's own copies (see ``urls.is_archived_copy``)."""
        return self._archive_bases


class FetchSettings(Section):
    user_agent: str = DEFAULT_USER_AGENT
    routes: list[str] = Field(default_factory=lambda: [
        "direct", "proxy", "mirror", "wayback", "alternate"])
    hosts: list[HostRule] = Field(default_factory=no_items)
    mirrors: list[Mirror] = Field(default_factory=no_items)
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    # Seconds per asset until a response starts: every route, retry and wait. Bounds what a
    # dead or stalled host costs; the body then has download_deadline.
    deadline: float = 40.0
    download_deadline: float = 3600.0  # seconds for one body once it streams
    host_down_after: int = 3  # connect failures or timeouts in a row that mark a host down
    host_down_cooldown: float = 300.0  # seconds a down host (or a name not found) fails fast
    max_redirects: int = 5
    max_bytes_image: int = 64 * MiB
    max_bytes_gif: int = 128 * MiB
    max_bytes_video: int = 4096 * MiB
    max_pixels: int = 200_000_000
    retries: int = 3  # extra tries per route for transient failures
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    per_host_concurrency: int = 4
    spool_memory: int = 1 * MiB  # bytes kept in memory before spooling to disk
    allow_private: list[str] = Field(default_factory=no_items)  # CIDRs exempt from the SSRF guard
    connect_to: list[str] = Field(default_factory=no_items)  # curl syntax HOST:PORT:THOST:TPORT
    egress_proxy: str | None = None  # http://, socks5:// for every host without a HostRule one
    verify_tls: bool = True
    ca_bundle: str | None = None
    lean_http: bool = True  # direct GETs on fetch/lean.py's keep-alive pool, not httpx
    # A redirect whose target is the site's root or whose last path segment matches one of
    # these globs (lowercased) stands in for a missing file: "placeholder", not archived.
    placeholders: list[str] = Field(default_factory=lambda: [
        "404", "404.*", "*[-_]404.*", "*notfound*", "*not[-_]found*", "*placeholder*",
        "*nopic*", "*no[-_]pic*", "*noimage*", "*no[-_]image*", "*deleted*", "*removed*",
        "*hotlink*",
    ])

    def rule_for(self, host: str) -> EffectiveRule:
        """The rule that applies to ``host``: each field from the first rule in ``hosts``
        whose pattern matches and that sets it (not None), else the default of this section
        (``routes``, ``per_host_concurrency``, no rate, ``egress_proxy``). Remembered per
        host (the section is frozen)."""
        return resolved(self, host, self._resolve)

    def _resolve(self, host: str) -> EffectiveRule:
        matching = [rule for rule in self.hosts if host_matches(host, rule.pattern)]
        routes = first_set((r.routes for r in matching), self.routes)
        cap = first_set((r.max_concurrency for r in matching), self.per_host_concurrency)
        rate = first_set((r.rate for r in matching), None)
        return EffectiveRule(
            routes=tuple(routes),
            max_concurrency=max(1, cap),
            rate=rate or None,
            egress_proxy=first_set((r.egress_proxy for r in matching), self.egress_proxy),
        )

    def max_bytes(self, kind: str) -> int:
        return {"image": self.max_bytes_image, "gif": self.max_bytes_gif,
                "video": self.max_bytes_video}.get(kind, self.max_bytes_image)


class VideoSettings(Section):
    format: str = "best[ext=mp4][vcodec!=none][acodec!=none]/best[ext=mp4]/best"
    retries: int = 5
    fragment_retries: int = 10
    extractor_retries: int = 2
    socket_timeout: float = 30.0
    concurrent_fragments: int = 1
    write_thumbnail: bool = True
    # yt-dlp extractors (IE_NAME) that may run; never "generic": it would fetch any page.
    extractors: list[str] = Field(default_factory=lambda: ["vqq:video"])
    temp_dir: str | None = None  # parent of the per-task download directories (system default)


class WaybackSettings(Section):
    """Route ``wayback``: a dead original recovered from a Wayback Machine capture (see
    ``archiver.fetch.wayback``)."""

    enabled: bool = True
    endpoint: str = "https://web.archive.org"  # CDX at /cdx/search/cdx, captures at /web/
    # The Archive answers ~24 CDX queries a minute per address and blocks one that ignores its
    # 429s; lookups and captures share this budget.
    rate: float = 0.4
    max_concurrency: int = 2
    captures: int = Field(default=3, ge=1)  # captures tried per asset, nearest date first
    cdx_limit: int = Field(default=2000, ge=1)  # captures listed per lookup (one a day at most)
    pause: float = 60.0  # seconds the host is paused after a 429 without Retry-After
    deadline: float = 300.0  # seconds per asset for lookups, pauses and captures to answer

    def host_rule(self) -> HostRule | None:
        """The endpoint host's rate and concurrency as a host rule (None when disabled)."""
        host = urlsplit(self.endpoint).hostname
        if not self.enabled or not host:
            return None
        return HostRule(pattern=host, rate=self.rate, max_concurrency=self.max_concurrency)


class StoreSettings(Section):
    url: str = "./archive"
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    multipart_threshold: int = 16 * MiB
    multipart_chunksize: int = 8 * MiB
    max_pool_connections: int = 32
    # Tries of one S3 request (boto3's standard retry mode, backoff up to 20 s) before the
    # error reaches archiver, which then retries the whole asset later (StoreUnavailable).
    request_attempts: int = 5
    # Create-only PUTs: None detects If-None-Match (a 501 falls back to HEAD checks for the
    # process); False always checks with HEAD (servers that ignore the header).
    conditional_writes: bool | None = None
    # Base URL of the objects as readers reach them (a CDN, a bucket website) for ``rewrite``'s
    # ``<base>/<key>``; None: the store's own URL.
    public_base_url: str | None = None


class RunnerSettings(Section):
    concurrency: int = 32
    # ``archiver archive`` takes the fleet's asset claims in Redis (never fetching an asset a
    # worker does): "auto" when Redis is configured and answers, "on" always, "off" never.
    claims: Literal["auto", "on", "off"] = "auto"
    # Processes a plan is archived with, each with its share of ``concurrency`` and of every
    # per-host cap (drivers/processes.py); when "auto" forks: config/archiver.toml.
    processes: Literal["auto"] | int = 1


class CelerySettings(Section):
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str | None = None  # coordination (claims, host limits); defaults to broker_url
    media_queue: str = "media"
    video_queue: str = "video"
    media_soft_time_limit: float = 900.0
    media_time_limit: float = 960.0
    video_soft_time_limit: float = 3600.0
    video_time_limit: float = 3660.0
    max_retries: int = 5
    retry_backoff: float = 2.0
    retry_backoff_max: float = 300.0
    max_deliveries: int = 5  # redeliveries after worker loss before the asset is failed
    # Longest wait between retries while Redis or the store does not answer (not counted in
    # max_retries, like waiting for another worker's claim).
    outage_backoff_max: float = 30.0
    # How long a task that cannot publish its retry or report its status (Redis down) waits
    # for Redis before giving its message back unacknowledged.
    outage_wait: float = 300.0
    # Lease on an asset, renewed every claim_ttl / 4 seconds while it is being worked on: a
    # dead worker's assets are free again (and swept) at most this long after it died.
    claim_ttl: float = 20.0
    # Seconds between sweeps (every worker, and enqueue --wait) for assets lost with a dead
    # worker: past their lease, unclaimed, with no final status; they are published again.
    # Also how often one worker of the fleet looks at the batches' journals (``journal``).
    sweep_interval: float = 10.0
    enqueue_batch: int = 500
    # Messages a worker takes per pool slot (Celery's prefetch multiplier). Those waiting
    # unstarted in a worker are marked in flight, so a killed worker loses none of them.
    prefetch_multiplier: int = Field(default=1, ge=1)
    # Redis visibility timeout: an unacked message of a dead worker is redelivered after this.
    # None derives it from the hard limits and the longest retry delay (see the property).
    visibility_timeout: float | None = None
    # Seconds between sweeps that give dead workers' unacked messages back to the queue.
    restore_interval: float = 30.0
    host_slot_ttl: float = 60.0  # lease on one per-host slot, renewed while a request runs
    batch_ttl: float = 7 * 86400.0  # how long enqueue batches' progress is kept in Redis
    # Seconds between a worker's announcements of the store it serves (they expire after 3).
    announce_interval: float = 10.0

    @model_validator(mode="after")
    def _check_limits(self) -> CelerySettings:
        for kind in ("media", "video"):
            soft = getattr(self, f"{kind}_soft_time_limit")
            hard = getattr(self, f"{kind}_time_limit")
            if not 0 < soft < hard:
                raise ValueError(f"{kind}_soft_time_limit must be > 0 and < {kind}_time_limit")
        floor = self._visibility_floor
        if self.visibility_timeout is not None and self.visibility_timeout <= floor:
            # A shorter timeout redelivers messages still running or waiting for their retry
            # countdown to another worker: duplicates of every long task.
            raise ValueError(f"visibility_timeout must exceed the longest hard time limit plus "
                             f"retry_backoff_max ({floor:g}s)")
        return self

    @property
    def _visibility_floor(self) -> float:
        return max(self.media_time_limit, self.video_time_limit) + max(
            self.retry_backoff_max, self.outage_backoff_max)

    @property
    def effective_visibility_timeout(self) -> float:
        """The visibility timeout given to kombu: configured, or the floor plus 10%."""
        if self.visibility_timeout is not None:
            return self.visibility_timeout
        return round(self._visibility_floor * 1.1 + 60)

    @property
    def coordination_url(self) -> str:
        """The Redis URL for claims, host limits and progress (the broker's by default)."""
        return self.redis_url or self.broker_url


class Settings(Section):
    # Whether the file, a variable or an option named the broker or the coordination Redis
    # (the built-in default names nobody's); set by load_settings, read by ``runner.claims``.
    _redis_configured: bool = PrivateAttr(default=False)
    scan: ScanSettings = Field(default_factory=ScanSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    wayback: WaybackSettings = Field(default_factory=WaybackSettings)

    @model_validator(mode="after")
    def _wayback_host(self) -> Settings:
        """The Wayback endpoint's host gets ``[wayback]`` rate and concurrency as a host rule
        after the configured ones, so that ``FetchSettings.rule_for``, the one resolver, gives
        them to every limiter (a configured rule's fields still come first)."""
        rule = self.wayback.host_rule()
        if rule is not None and rule not in self.fetch.hosts:
            fetch = self.fetch.model_copy(update={"hosts": [*self.fetch.hosts, rule]})
            object.__setattr__(self, "fetch", fetch)  # frozen: set once, while validating
        return self

    @model_validator(mode="after")
    def _archive_bases(self) -> Settings:
        """The scanner skips references under ``store.public_base_url`` (archived copies)."""
        bases = (self.store.public_base_url,) if self.store.public_base_url else ()
        if self.scan.archive_bases != bases:
            scan = self.scan.model_copy()  # never the caller's own ScanSettings
            scan._archive_bases = bases
            object.__setattr__(self, "scan", scan)  # frozen: set once, while validating
        return self

    def with_overrides(self, sources: Mapping[tuple[str, str], str] | None = None,
                       **sections: dict[str, Any]) -> Settings:
        """A copy with some fields of some sections replaced (CLI flags use this; ``sources``
        names the option that gave each ``(section, field)``, for error messages)."""
        data = self.model_dump()
        origins: Origins = {}
        labels = sources or {}
        lay_options(data, origins, {
            (section, key): (labels.get((section, key), "command-line options"), value)
            for section, values in sections.items() for key, value in values.items()
            if value is not None
        })
        out = validate(Settings, data, origins)
        out._redis_configured = self._redis_configured or _names_redis(origins)
        return out

    @property
    def redis_configured(self) -> bool:
        """Whether the broker or the coordination Redis was configured, not defaulted."""
        return self._redis_configured


def _names_redis(origins: Origins) -> bool:
    """Whether a file, a variable or an option gave the broker or the coordination Redis URL (a
    file's origins name its sections, variables' and options' their fields)."""
    return any(key in origins for key in (("celery", "broker_url"), ("celery", "redis_url")))


ALIASES = {
    "ARCHIVER_BROKER_URL": ("celery", "broker_url"),
    "ARCHIVER_REDIS_URL": ("celery", "redis_url"),
    "ARCHIVER_STORE_URL": ("store", "url"),
    "ARCHIVER_STORE": ("store", "url"),
    "ARCHIVER_S3_ENDPOINT_URL": ("store", "endpoint_url"),
    "ARCHIVER_CONCURRENCY": ("runner", "concurrency"),
}
# Variables that are not settings but are read with them.
NOT_SETTINGS = ("ARCHIVER_CONFIG",)

DEFAULT_CONFIG_PATHS = ("config/archiver.toml",)


def env_variables() -> dict[str, tuple[str, str]]:
    """Every ``ARCHIVER_*`` variable that sets a field -> its (section, field)."""
    return env_names(Settings, ALIASES)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the TOML file (``path``, ``$ARCHIVER_CONFIG`` or ./config/archiver.toml),
    then ``ARCHIVER_*`` variables from ``environ`` (``os.environ`` when None).

    Raises ConfigError, in one line naming the file or variable, when the file is unreadable,
    a variable is unknown or a value breaks its rule.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origins: Origins = {}
    chosen = path or env.get("ARCHIVER_CONFIG")
    if chosen:
        lay_file(data, origins, Path(chosen))
    else:
        for candidate in DEFAULT_CONFIG_PATHS:
            if Path(candidate).is_file():
                lay_file(data, origins, Path(candidate))
                break
    lay_env(data, origins, env, env_variables(), NOT_SETTINGS)
    settings = validate(Settings, data, origins)
    celery = data.get("celery")
    settings._redis_configured = _names_redis(origins) or (
        isinstance(celery, dict) and bool({"broker_url", "redis_url"} & set(celery)))
    return settings
