"""The layers hold: lower packages never load higher ones (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("module", ["archiver.fetch.http", "archiver.fetch.video"])
def test_fetch_loads_neither_the_scanner_nor_its_parsers(module: str) -> None:
    loaded = loaded_by(module)
    assert not {m for m in loaded if m.startswith("archiver.scan")}
    assert not {m for m in loaded if m.split(".")[0] in ("bs4", "lxml", "yaml")}


def test_urls_is_standard_library_only() -> None:
    loaded = loaded_by("archiver.urls")
    ours = {m for m in loaded if m.startswith("archiver.")}
    assert ours <= {"archiver.urls", "archiver.urls.copies", "archiver.urls.escapes",
                    "archiver.urls.kinds", "archiver.urls.links",
                    "archiver.urls.normal", "archiver.urls.proxies", "archiver.urls.vqq",
                    "archiver.settings", "archiver.settings_rules",
                    "archiver.settings_sources", "archiver.validation", "archiver.errors",
                    "archiver.models"}
    assert not {m for m in loaded if m.split(".")[0] in ("bs4", "lxml", "httpx", "celery")}
