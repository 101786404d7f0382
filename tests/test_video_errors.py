"""yt-dlp failures mapped to the one error tree, with stable codes."""

from __future__ import annotations

import io
import sys

import pytest
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import (
    DownloadError,
    ExtractorError,
    GeoRestrictedError,
    UnsupportedError,
)

from archiver.errors import Blocked, FetchError, Unsupported
from archiver.fetch.ytdlp_errors import map_error


def wrapped(cause: BaseException) -> DownloadError:
    """What YoutubeDL raises: a DownloadError whose exc_info holds the cause."""
    try:
        raise cause
    except BaseException:
        return DownloadError(f"ERROR: {cause}", sys.exc_info())


def http(status: int) -> HTTPError:
    return HTTPError(Response(io.BytesIO(b""), "http://x.test/", {}, status=status))


@pytest.mark.parametrize(("exc", "code", "retryable"), [
    (GeoRestrictedError("The uploader has not made this video available in your country"),
     "geo-blocked", False),
    (ExtractorError("Tencent said: 该视频已下线", expected=True), "gone", False),
    (ExtractorError("Private video. Sign in if you've been granted access", expected=True),
     "gone", False),
    (ExtractorError("This video has been removed by the uploader", expected=True), "gone", False),
    (ExtractorError("This video is DRM protected", expected=True), "drm", False),
    (UnsupportedError("http://nope.test/x"), "unsupported", False),
    (ExtractorError("Requested format is not available"), "unsupported", False),
    (ExtractorError("Unable to extract video info; please report this issue on GitHub"),
     "extractor-error", True),
    (ExtractorError("Unable to download webpage", cause=http(404)), "gone", False),
    (ExtractorError("Unable to download JSON", cause=http(503)), "http-503", True),
    (ExtractorError("Unable to download JSON", cause=http(403)), "http-403", False),
    (TransportError("Connection refused"), "connect", True),
    (TransportError("Read timed out."), "timeout", True),
    (ExtractorError("[download] fragment 3 not found, unable to continue"),
     "fragment-missing", True),
])
def test_codes(exc: Exception, code: str, retryable: bool) -> None:
    for candidate in (exc, wrapped(exc)):
        error = map_error(candidate)
        assert isinstance(error, FetchError)
        assert (error.code, error.retryable) == (code, retryable), candidate
        assert "please report" not in error.message


def test_http_404_during_a_fragmented_download_is_a_missing_fragment() -> None:
    error = map_error(wrapped(ExtractorError("Got error", cause=http(404))), fragmented=True)
    assert error.code == "fragment-missing"


def test_what_the_fetcher_saw_wins_over_what_yt_dlp_made_of_it() -> None:
    generic = wrapped(http(403))
    assert map_error(generic, over_cap=1000).code == "too-large"
    refused = Blocked("media.test resolves to non-public address 127.0.0.1", host="media.test")
    error = map_error(generic, blocked=[refused])
    assert error.code == "blocked" and error.details["host"] == "media.test"


def test_logged_messages_are_read_when_the_exception_says_little() -> None:
    error = map_error(DownloadError("ERROR: something"),
                      messages=["ERROR: [vqq] This video is not available from your location"])
    assert error.code == "geo-blocked"


def test_archiver_errors_pass_through() -> None:
    original = Unsupported("is a playlist")
    assert map_error(original) is original
