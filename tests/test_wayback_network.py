"""Recovers an image from the real Wayback Machine. Needs the internet, so it is excluded by
default; run it by hand with ``pytest -m network tests/test_wayback_network.py``."""

from __future__ import annotations

import pytest

from archiver.fetch.http import HttpFetcher
from archiver.models import Asset, Attempt, Citation
from archiver.settings import Settings

# Google's logo of the 2000s, captured many times since 1999.
LOGO = "http://www.google.com/images/logo.gif"


@pytest.mark.network
def test_recovers_a_capture_near_the_article_date_from_the_real_archive() -> None:
    # A host rule sends the asset straight to the wayback route (no request to Google).
    settings = Settings.model_validate({"fetch": {"hosts": [
        {"pattern": "www.google.com", "routes": ["wayback"]}]}})
    fetcher = HttpFetcher(settings)
    attempts: list[Attempt] = []
    asset = Asset(LOGO, "gif", citations=(Citation("post", ("img[src]",),
                                                   "2005-06-01T00:00:00Z"),))
    try:
        fetched = fetcher.fetch(asset, attempts)
    finally:
        fetcher.close()
    try:
        assert fetched.route == "wayback" and fetched.blob.media_type == "image/gif"
        stamp = fetched.facts["wayback"]["timestamp"]
        assert stamp.startswith(("2004", "2005", "2006")), stamp
        assert fetched.url.startswith("https://web.archive.org/web/")
    finally:
        fetched.close()
