"""A stand-in yt-dlp extractor: ``http://video.test/watch/<id>`` pages whose metadata (formats,
thumbnail, duration...) is a JSON document served by the origin server.

The v.qq.com path is tested with yt-dlp's real extractor (tests/support/vqq.py). This one stays
for what that cannot show: an extractor handed to ``VideoFetcher(extra_extractors=...)`` (a
plugin), metadata v.qq.com does not give (duration, uploader, upload date), and the video
benchmark's plain-HTTP stream of a gigabyte. Hosts ``video.test`` and ``media.test`` reach the
origin server through ``connect_to`` rules.
"""

from __future__ import annotations

import json
from typing import Any

from yt_dlp.extractor.common import InfoExtractor

from tests.support.origin import OriginServer, Response

PAGE = "http://video.test/watch/{id}"
MEDIA = "http://media.test"


class LocalVideoIE(InfoExtractor):  # type: ignore[misc]
    IE_NAME = "archiver:local"
    _VALID_URL = r"https?://video\.test/watch/(?P<id>[\w-]+)"
    __test__ = False

    def _real_extract(self, url: str) -> dict[str, Any]:
        video_id = self._match_id(url)
        meta = self._download_json(f"http://video.test/api/{video_id}.json", video_id)
        return {"id": video_id, **meta}


def publish(
    origin: OriginServer,
    video_id: str,
    *,
    formats: list[dict[str, Any]],
    thumbnail: bytes | None = None,
    title: str = "A local video",
    duration: float = 12.0,
) -> str:
    """Serve the metadata (and thumbnail) for ``video_id``; returns the page URL."""
    meta: dict[str, Any] = {
        "title": title, "duration": duration, "uploader": "archiver tests",
        "upload_date": "20240105", "formats": formats,
    }
    if thumbnail is not None:
        origin.add(f"/thumb/{video_id}.jpg", Response(thumbnail, content_type="image/jpeg"))
        meta["thumbnail"] = f"{MEDIA}/thumb/{video_id}.jpg"
    origin.add(f"/api/{video_id}.json",
               Response(json.dumps(meta).encode(), content_type="application/json"))
    return PAGE.format(id=video_id)


def progressive(origin: OriginServer, video_id: str, body: bytes | Response) -> dict[str, Any]:
    """A single MP4 format served at /v/<id>.mp4."""
    origin.add(f"/v/{video_id}.mp4",
               body if isinstance(body, Response) else Response(body, content_type="video/mp4"))
    return {"format_id": "mp4-360", "url": f"{MEDIA}/v/{video_id}.mp4", "ext": "mp4",
            "width": 640, "height": 360, "vcodec": "avc1.42E01E", "acodec": "mp4a.40.2",
            "protocol": "http"}
