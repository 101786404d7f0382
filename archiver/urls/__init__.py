"""URLs, below both scan and fetch: normalisation to the origin, media kinds, proxy unwrap and
re-wrap, and v.qq.com's canonical video form. Standard library only (no parser, no network)."""

from archiver.urls.copies import ARCHIVED_COPY, is_archived_copy
from archiver.urls.kinds import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    extension,
    is_media_url,
    kind_of,
)
from archiver.urls.links import check_links, unwrap_link
from archiver.urls.normal import (
    DATA_URI,
    INVALID,
    JAVASCRIPT,
    RELATIVE,
    UNSUPPORTED_SCHEME,
    UNSUPPORTED_VIDEO,
    Normal,
    Rejected,
    normalise,
    on_hosts,
)
from archiver.urls.proxies import match_rule, unwrap, wrap
from archiver.urls.vqq import canonical_video

__all__ = [
    "ARCHIVED_COPY", "AUDIO_EXTENSIONS", "DATA_URI", "IMAGE_EXTENSIONS", "INVALID", "JAVASCRIPT",
    "MEDIA_EXTENSIONS", "RELATIVE", "UNSUPPORTED_SCHEME", "UNSUPPORTED_VIDEO",
    "VIDEO_EXTENSIONS", "Normal", "Rejected", "canonical_video", "check_links", "extension",
    "is_archived_copy", "is_media_url", "kind_of", "match_rule", "normalise", "on_hosts",
    "unwrap", "unwrap_link", "wrap",
]
