"""The command line: wiring only. Each command module registers itself on ``main``."""

from __future__ import annotations

from archiver.cli.app import main

__all__ = ["main"]
