"""A yt-dlp extractor registered only in tests: ``http://video.test/watch/<id>`` pages whose
metadata (formats, thumbnail, duration...) is a JSON document served by the origin server.

It lets real yt-dlp (its format selection, HTTP and native HLS downloaders, thumbnail writer)
run against 127.0.0.1 with no network. Hosts ``video.test`` and ``media.test`` reach the origin
server through ``connect_to`` rules; see ``video_settings``.
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


def ts_segment(index: int, packets: int = 40) -> bytes:
    """MPEG-TS-looking bytes: 188-byte packets with the 0x47 sync byte (enough to sniff)."""
    out = bytearray()
    for p in range(packets):
        payload = bytes(((index * 7 + p + i) & 0xFF) for i in range(187))
        out += b"\x47" + payload
    return bytes(out)


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


def hls(origin: OriginServer, video_id: str, segments: list[bytes | None]) -> dict[str, Any]:
    """An HLS media playlist of ``segments`` (None: listed but answering 404)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2",
             "#EXT-X-MEDIA-SEQUENCE:0"]
    for i, body in enumerate(segments):
        lines += ["#EXTINF:2.0,", f"seg{i}.ts"]
        if body is not None:
            origin.add(f"/hls/{video_id}/seg{i}.ts", Response(body, content_type="video/mp2t"))
    lines.append("#EXT-X-ENDLIST")
    origin.add(f"/hls/{video_id}/index.m3u8",
               Response(("\n".join(lines) + "\n").encode(),
                        content_type="application/vnd.apple.mpegurl"))
    return {"format_id": "hls-720", "url": f"{MEDIA}/hls/{video_id}/index.m3u8", "ext": "mp4",
            "width": 1280, "height": 720, "vcodec": "avc1.64001f", "acodec": "mp4a.40.2",
            "protocol": "m3u8_native"}
