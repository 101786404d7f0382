"""Image facts (width, height, frames) read with Pillow, never crashing on a bad image.

Width and height come from the header alone. Counting frames decodes (GIF frames are LZW
streams), so it is only done when the image is within ``max_pixels``; a decompression bomb or a
corrupt file just leaves facts out, because the bytes themselves are still worth keeping.
Pillow's global ``Image.MAX_IMAGE_PIXELS`` is left alone: it is process-wide and threads share it.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from PIL import Image

log = logging.getLogger(__name__)

# Formats Pillow reads that can hold several frames; others are one frame by definition.
_ANIMATED = {"GIF", "PNG", "WEBP", "MPO", "TIFF"}


def image_facts(file: IO[bytes], media_type: str, max_pixels: int) -> dict[str, Any]:
    """{"width", "height", "frames"} as far as they can be read; {} for non-images, SVG or
    unreadable data. Rewinds ``file`` to its start afterwards."""
    if not media_type.startswith("image/") or media_type == "image/svg+xml":
        return {}
    facts: dict[str, Any] = {}
    try:
        file.seek(0)
        with Image.open(file) as im:
            width, height = im.size
            facts["width"], facts["height"] = int(width), int(height)
            if width * height <= max_pixels:
                frames = getattr(im, "n_frames", 1) if im.format in _ANIMATED else 1
                facts["frames"] = int(frames)
    except Exception as exc:  # Pillow raises many types (and bomb warnings under -W error)
        log.debug("no image facts: %s", exc)
    finally:
        file.seek(0)
    return facts
