"""Scan articles for media references (pure: no network)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Bump whenever scan_text's output can change for the same input and settings: it is part of
# the scan cache's key (archiver.plan.scancache), which otherwise returns what an older scanner
# found. (The cache also keys on a digest of the scanner's source files.)
SCANNER_VERSION = 1

if TYPE_CHECKING:
    from archiver.scan.core import scan_paths, scan_text

__all__ = ["SCANNER_VERSION", "scan_paths", "scan_text"]


def __getattr__(name: str) -> Any:
    """The scanner itself (``core``: bs4, lxml, YAML, about a tenth of a second to import) is
    loaded on first use: a run whose articles the scan cache holds parses none of them."""
    if name in ("scan_paths", "scan_text"):
        from archiver.scan import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
