"""Scan articles for media references (pure: no network)."""

from archiver.scan.core import scan_paths, scan_text

# Bump whenever scan_text's output can change for the same input and settings: it is part of
# the scan cache's key (archiver.plan.scancache), which otherwise returns what an older scanner
# found. (The cache also keys on a digest of the scanner's source files.)
SCANNER_VERSION = 1

__all__ = ["SCANNER_VERSION", "scan_paths", "scan_text"]
