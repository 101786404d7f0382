"""The command line: wiring only. Each command module registers itself on ``main``."""

from __future__ import annotations

import os

# archiver's pydantic models are its own settings, validated once: no pydantic plugin has
# anything to observe there, and looking for one reads the metadata of every installed
# distribution (about 5 ms of every start-up). Set before the first model is built (by the
# import below); an operator's own value wins (an empty one looks for plugins again).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from archiver.cli.app import main

__all__ = ["main"]
