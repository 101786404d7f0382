"""Fetchers: HTTP (httpx) and video (yt-dlp), behind the SSRF guard."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def _httpx_cli_on_demand() -> None:
    """httpx's package imports its command-line client (``httpx._main``) and with it rich's
    console, pygments and click: about 50 ms of every archiver start, as much as the rest of
    httpx, for a command archiver never runs. Until httpx is imported, its ``_main`` is a
    module whose ``main`` imports the real one when called (httpx's own ``httpx`` command
    runs in a process of its own, where this never happens)."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")

    def main(*args: Any, **kwargs: Any) -> Any:
        if sys.modules.get("httpx._main") is stub:
            del sys.modules["httpx._main"]
        return importlib.import_module("httpx._main").main(*args, **kwargs)

    stub.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


_httpx_cli_on_demand()
