"""Scan articles for media references (pure: no network)."""

from archiver.scan.core import scan_paths, scan_text

__all__ = ["scan_paths", "scan_text"]
