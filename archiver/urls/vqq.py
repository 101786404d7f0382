"""v.qq.com's canonical video form: every page, player and mobile URL of one video -> one URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

_VID = re.compile(r"^[A-Za-z0-9]{5,24}$")
_VQQ_PAGE = re.compile(r"^/x/page/([A-Za-z0-9]+)\.html$")
_VQQ_COVER = re.compile(r"^/x/cover/([A-Za-z0-9]+)(?:/([A-Za-z0-9]+))?\.html$")
_VQQ_OLD_PAGE = re.compile(r"^/page/(?:[a-z0-9]/){3}([A-Za-z0-9]+)\.html$")


def canonical_video(url: str) -> str | None:
    """``https://v.qq.com/x/page/<vid>.html`` for the v.qq.com page, iframe player, txp
    player, mobile and old page forms; cover pages ``/x/cover/<sid>[/<vid>].html`` are kept
    (``/x/cover/<sid>.html?vid=<vid>`` is ``/x/cover/<sid>/<vid>.html``).

    None when the URL is not a v.qq.com video.
    """
    if "qq.com" not in url.lower():
        return None
    text = url.strip()
    if text.startswith("//"):
        text = "https:" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if not (host == "v.qq.com" or host.endswith(".v.qq.com") or host == "video.qq.com"
            or host.endswith(".video.qq.com")):
        return None
    path = parts.path
    for pattern in (_VQQ_PAGE, _VQQ_OLD_PAGE):
        match = pattern.match(path)
        if match:
            return _page(match.group(1))
    cover = _VQQ_COVER.match(path)
    if cover:
        sid, vid = cover.groups()
        if not vid:  # ``/x/cover/<sid>.html?vid=<vid>``: that episode, not the show's default
            asked = dict(parse_qsl(parts.query)).get("vid", "").strip()
            vid = asked if _VID.match(asked) else None
        tail = f"{sid}/{vid}" if vid else sid
        return f"https://v.qq.com/x/cover/{tail}.html"
    vid = dict(parse_qsl(parts.query)).get("vid", "").strip()
    if vid.lower().startswith(("http:", "https:", "//")):
        return canonical_video(vid) if vid != url else None
    if _VID.match(vid):
        return _page(vid)
    return None


def _page(vid: str) -> str:
    return f"https://v.qq.com/x/page/{vid}.html"
