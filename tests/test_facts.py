"""Image facts (width, height, frames) from the bytes, within the pixel cap."""

from __future__ import annotations

import io

from PIL import Image

from archiver.fetch.facts import image_facts
from tests.support import media


def _animated_gif(frames: int) -> bytes:
    images = [Image.new("RGB", (40, 30), (i * 80, 0, 255 - i * 80)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


def test_image_facts() -> None:
    gif = io.BytesIO(_animated_gif(3))
    assert image_facts(gif, "image/gif", 10_000) == {"width": 40, "height": 30, "frames": 3}
    # Above the pixel cap: header facts only, nothing decoded.
    assert image_facts(gif, "image/gif", 100) == {"width": 40, "height": 30}
    assert gif.tell() == 0
    assert image_facts(io.BytesIO(media.png()[:40]), "image/png", 10_000) == {}
    assert image_facts(io.BytesIO(b"<svg/>"), "image/svg+xml", 100) == {}
