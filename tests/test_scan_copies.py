"""The archive's own copies are not references: a rewritten article scanned again finds
nothing new."""

from __future__ import annotations

import pytest

from archiver import urls
from archiver.scan import scan_text
from archiver.settings import ScanSettings, Settings

DIGEST = "ab" * 32


def test_archived_copies_are_skipped_by_the_scanner() -> None:
    copy = f"https://media.example.org/archive/media/ab/{DIGEST}.jpg"
    under_base = "https://cdn.example.org/a/anything.png"
    settings = Settings.model_validate(
        {"store": {"public_base_url": "https://CDN.example.org/a/"}}).scan
    text = (f'<img src="{copy}"><video src="{under_base}"></video>'
            f'<img src="file:///srv/archive/media/ab/{DIGEST}.gif">'
            f'<img src="https://other.example/media/cd/{DIGEST}.jpg">')
    result = scan_text(text, "a", settings)
    assert [r.origin for r in result.references] == [
        f"https://other.example/media/cd/{DIGEST}.jpg"]  # not sharded by its own digest
    assert [(s.value, s.reason) for s in result.skipped] == [
        (copy, urls.ARCHIVED_COPY), (under_base, urls.ARCHIVED_COPY),
        (f"file:///srv/archive/media/ab/{DIGEST}.gif", urls.ARCHIVED_COPY)]
    # Without the base, only content addresses are known for copies.
    plain = scan_text(text, "a", ScanSettings())
    assert under_base in [r.origin for r in plain.references]


@pytest.mark.parametrize(("url", "bases", "copy"), [
    (f"https://bucket.s3.amazonaws.com/p/media/ab/{DIGEST}.webp", (), True),
    (f"http://127.0.0.1:9000/bucket/p/media/ab/{DIGEST}.mp4", (), True),
    (f"https://x.example/media/ab/{DIGEST}.jpg?v=1", (), True),
    (f"https://x.example/media/ab/{DIGEST}.jpg/", (), False),
    (f"https://x.example/media/AB/{DIGEST.upper()}.jpg", (), False),
    ("https://x.example/media/ab/abcd.jpg", (), False),
    ("https://cdn.example/archive/x.png", ("https://cdn.example/archive",), True),
    ("https://cdn.example/archived/x.png", ("https://cdn.example/archive",), False),
    ("/archive/x.png", ("/archive/",), True),
])
def test_is_archived_copy(url: str, bases: tuple[str, ...], copy: bool) -> None:
    assert urls.is_archived_copy(url, bases) is copy
