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


def _jpegs() -> list[bytes]:
    """JPEGs of the shapes Pillow writes: grey, colour, CMYK, progressive, optimised, with
    Exif, an ICC profile, a comment, restart intervals."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "archiver"
    exif[0x0131] = "a test"
    out = []
    for mode, options in [("L", {}), ("RGB", {}), ("CMYK", {}),
                          ("RGB", {"progressive": True}), ("RGB", {"optimize": True}),
                          ("RGB", {"exif": exif.tobytes()}), ("RGB", {"icc_profile": icc}),
                          ("RGB", {"comment": b"a comment"}), ("RGB", {"comment": b"c" * 6000}),
                          ("RGB", {"restart_marker_blocks": 2, "dpi": (72, 72)})]:
        buf = io.BytesIO()
        Image.new(mode, (37, 21)).save(buf, "JPEG", quality=70, **options)
        out.append(buf.getvalue())
    return out


def _pillow(data: bytes) -> dict[str, object]:
    """What Pillow says of ``data`` in a run (its warnings are not errors there)."""
    import warnings

    from archiver.fetch.facts import _pillow_facts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _pillow_facts(io.BytesIO(data), "JPEG", 10_000)
        except Exception:
            return {}


def test_jpeg_headers_read_here_say_what_pillow_says() -> None:
    """The usual JPEG is read without Pillow, to the same facts; every truncation of its
    header and thousands of damaged ones are either read to what Pillow reads or left to
    Pillow (None): never a different answer."""
    import random

    from archiver.fetch.facts import jpeg_size

    rng = random.Random(11)
    odd = [b"\xff\xed\x00\x12Photoshop 3.0\x008BIM", b"\xff\xe0\x00\x07JFIF\x00",
           b"\xff\xe2\x00\x08MPF\x00\x00\x00", b"\xff\xe2\x00\x10ICC_PROFILE\x00\x01",
           b"\xff\xee\x00\x07Adobe", b"\xff\xff\xff", b"\x00", b"\xff\xdb\x00\x05\x00\x01\x02",
           b"\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x02\x01\x11\x00", b"\xff\xcc\x00\x02"]
    checked = 0
    for jpeg in _jpegs():
        assert jpeg_size(jpeg) == (37, 21)
        assert image_facts(io.BytesIO(jpeg), "image/jpeg", 10_000) == _pillow(jpeg)
        assert image_facts(io.BytesIO(jpeg), "image/jpeg", 100) == {"width": 37, "height": 21}
        scan = jpeg.index(b"\xff\xda")
        damaged = [jpeg[:n] for n in range(scan + 16)]
        for _ in range(300):
            data = bytearray(jpeg[:scan + 64])
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(2, scan + 4)] = rng.choice((0, 1, 8, 0xFF, rng.randrange(256)))
            damaged.append(bytes(data))
            at = rng.randrange(2, scan)
            damaged.append(jpeg[:at] + rng.choice(odd) + jpeg[at:])
        for data in damaged:
            size = jpeg_size(data)
            if size is not None:
                want = _pillow(data)
                assert (want.get("width"), want.get("height")) == size, data[:scan + 8]
                checked += 1
    assert checked > 500  # many damaged headers are still read here, not all left to Pillow


def test_the_pixel_limit_before_pillow_loads_is_pillows_default() -> None:
    """A usual JPEG is judged without loading Pillow, against Pillow's own default limit."""
    import subprocess
    import sys

    code = ("import sys\nfrom archiver.fetch.facts import PILLOW_MAX_IMAGE_PIXELS, _pillow_limit\n"
            "assert 'PIL' not in sys.modules\nassert _pillow_limit() == PILLOW_MAX_IMAGE_PIXELS\n"
            "from PIL import Image\nprint(Image.MAX_IMAGE_PIXELS == PILLOW_MAX_IMAGE_PIXELS)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True"
