"""A local v.qq.com for yt-dlp's real ``VQQVideoIE``: the requests it makes, answered in the shapes
its source reads (yt_dlp/extractor/tencent.py).

1. ``GET https://v.qq.com/x/page/<vid>.html``: the page; title, description and thumbnail come
   from its ``og:`` meta tags (``window.__PINIA__`` as the fallback).
2. ``GET https://h5vv6.video.qq.com/getvinfo?vid=<vid>&defn=hd&...``: the info API, answering
   ``QZOutputJson={...};``. ``fl.fi`` lists the qualities; the extractor asks again with
   ``defn=<name>`` for each one beyond ld/sd/hd. ``vl.vi[0].ul.ui[]`` holds the format: with
   ``hls.pt`` an HLS playlist at ``url + pt``, else a progressive file ``url + fn?vkey=fvkey``.
   ``msg`` with a non-``0.0`` code is an error (the geo-block text raises GeoRestrictedError).
3. The media (``ugcws.video.gtimg.com``) and the thumbnail (``puui.qpic.cn``).

All four hosts are one TLS ``OriginServer`` reached with ``connect_to`` rules, so the fetch goes
through the filtering proxy with CONNECT tunnels, and yt-dlp verifies the test CA's
certificate through ``fetch.ca_bundle``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.origin import OriginServer, Response

VQQ_HOSTS = ("v.qq.com", "h5vv6.video.qq.com", "ugcws.video.gtimg.com", "puui.qpic.cn")
PAGE = "https://v.qq.com/x/page/{vid}.html"
MEDIA = "https://ugcws.video.gtimg.com"
GEO_BLOCKED = "您所在区域暂无此内容版权（如设置VPN请关闭后重试）"


def connect_to(port: int) -> list[str]:
    """``connect_to`` rules sending every v.qq.com host to the local server."""
    return [f"{host}:443:127.0.0.1:{port}" for host in VQQ_HOSTS]


@dataclass
class Quality:
    """One ``defn`` of a video: a progressive MP4 (``body``) or HLS ``segments`` (None: a
    segment listed but answering 404)."""

    name: str
    body: bytes | Response | None = None
    segments: list[bytes | None] | None = None
    width: int = 640
    height: int = 360


@dataclass
class Video:
    vid: str
    qualities: list[Quality]
    title: str
    error: str | None = None
    api_calls: list[dict[str, str]] = field(default_factory=list)


class VQQSite:
    """Videos published on the local v.qq.com (an ``OriginServer`` with TLS)."""

    def __init__(self, origin: OriginServer) -> None:
        self.origin = origin
        self.videos: dict[str, Video] = {}
        origin.add("/getvinfo?*", Response(handler=self._api))

    def publish(self, vid: str, qualities: list[Quality], *, title: str = "本地视频",
                description: str = "A video served by the tests", thumbnail: bytes | None = None,
                error: str | None = None) -> str:
        """Serve the page, API answers, media and thumbnail of ``vid``; returns the page URL."""
        self.videos[vid] = Video(vid, qualities, title, error)
        thumb = f"https://puui.qpic.cn/vpic_cover/{vid}/{vid}_hz.jpg"
        if thumbnail is not None:
            self.origin.add(f"/vpic_cover/{vid}/{vid}_hz.jpg",
                            Response(thumbnail, content_type="image/jpeg"))
        page = (
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{title}_腾讯视频</title>"
            f"<meta property=\"og:title\" content=\"{title}_腾讯视频\">"
            f"<meta property=\"og:description\" content=\"{description}\">"
            f"<meta property=\"og:image\" content=\"{thumb}\">"
            "</head><body><div id=\"app\"></div><script>window.__PINIA__={global:{videoInfo:"
            f"{{title:\"{title}\",desc:\"{description}\",pic160x90:\"{thumb}\"}}}}}}</script>"
            "</body></html>"
        )
        self.origin.add(f"/x/page/{vid}.html",
                        Response(page.encode(), content_type="text/html; charset=utf-8"))
        for quality in qualities:
            self._serve_media(vid, quality)
        return PAGE.format(vid=vid)

    def _serve_media(self, vid: str, quality: Quality) -> None:
        if quality.segments is not None:
            lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2",
                     "#EXT-X-MEDIA-SEQUENCE:0"]
            for i, body in enumerate(quality.segments):
                lines += ["#EXTINF:2.0,", f"seg{i}.ts"]
                if body is not None:
                    self.origin.add(f"/hls/{vid}/{quality.name}/seg{i}.ts",
                                    Response(body, content_type="video/mp2t"))
            lines.append("#EXT-X-ENDLIST")
            self.origin.add(f"/hls/{vid}/{quality.name}/index.m3u8?ver=4",
                            Response(("\n".join(lines) + "\n").encode(),
                                     content_type="application/vnd.apple.mpegurl"))
        elif quality.body is not None:
            body = quality.body
            self.origin.add(f"/vqq/{vid}/{vid}.{quality.name}.mp4?vkey=K{vid}",
                            body if isinstance(body, Response)
                            else Response(body, content_type="video/mp4"))

    def _api(self, handler: BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        video = self.videos.get(query.get("vid", ""))
        if video is not None:
            video.api_calls.append(query)
        answer = self._answer(video, query.get("defn", ""))
        body = f"QZOutputJson={json.dumps(answer, ensure_ascii=False)};".encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _answer(video: Video | None, defn: str) -> dict[str, object]:
        if video is None:
            return {"code": "-2", "em": 61, "msg": "vid is wrong", "s": "f"}
        if video.error is not None:
            return {"code": "-1", "em": 80, "msg": video.error, "s": "f"}
        names = [q.name for q in video.qualities]
        quality = video.qualities[names.index(defn)] if defn in names else video.qualities[0]
        fi = [{"id": 10000 + i, "name": q.name, "br": i + 1, "sname": q.name.upper(),
               "resolution": f"{q.height}P", "drm": 0, "bandwidth": 800_000,
               "audiobandwidth": 64_000, "vfps": 25}
              for i, q in enumerate(video.qualities)]
        if quality.segments is not None:
            ui = [{"url": f"{MEDIA}/hls/{video.vid}/{quality.name}/", "vt": 1,
                   "hls": {"pt": "index.m3u8?ver=4"}}]
        else:
            ui = [{"url": f"{MEDIA}/vqq/{video.vid}/", "vt": 1, "dt": 2}]
        vi = {"vid": video.vid, "ti": video.title, "br": names.index(quality.name) + 1,
              "fn": f"{video.vid}.{quality.name}.mp4", "fvkey": f"K{video.vid}",
              "vw": quality.width, "vh": quality.height, "td": "12.0", "ul": {"ui": ui}}
        return {"code": "0.0", "s": "o", "dltype": 1, "fl": {"cnt": len(fi), "fi": fi},
                "vl": {"cnt": 1, "vi": [vi]}, "sfl": {"cnt": 0}}
