"""Sound files and older video containers, archived end to end: ``<audio>`` sources and links to
.mp3/.m4a/... are the scanner's ``video`` kind, and their bytes (MPEG audio, AAC, MP4 audio,
Ogg, WAV, FLAC, FLV) are media for it. They used to be skipped (the HTTP fetcher took five video
suffixes of its own), and fetched they would have failed as ``not-media`` (a video asset took
only video types; Ogg, WAV, FLAC and FLV were not recognised at all)."""

from __future__ import annotations

from pathlib import Path

from archiver.drivers.job import archive_paths
from archiver.settings import Settings
from archiver.store import open_store
from tests.support import media
from tests.support.origin import OriginServer, Response

HOST = "sound.example.com"

SOUNDS = {
    # path -> (body, the type and extension it is stored with)
    "/a/talk.mp3": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" * 500,
                    ("audio/mpeg", "mp3")),
    "/a/voice.ogg": (media.ogg(b"\x01vorbis\x00\x00\x00\x00\x02", 2000),
                     ("audio/ogg", "ogg")),
    "/a/clip.m4a": (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + b"\x00" * 2000,
                    ("audio/mp4", "m4a")),
    "/a/tone.wav": (media.wav(4000), ("audio/wav", "wav")),
    "/a/song.flac": (b"fLaC\x00\x00\x00\x22" + b"\x10" * 2000, ("audio/flac", "flac")),
    "/a/old.flv": (b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00" * 2000, ("video/x-flv", "flv")),
}


def test_sound_files_and_flv_are_archived_as_what_they_are(origin: OriginServer,
                                                          tmp_path: Path) -> None:
    for path, (body, _) in SOUNDS.items():
        origin.add(path, Response(body, content_type="application/octet-stream"))
    # A video URL that names no file type is fetched, and its bytes say what it is.
    origin.add("/a/stream?*", Response(media.mp4(), content_type="application/octet-stream"))
    origin.add("/a/page.mp3", Response(b"<!doctype html><title>gone</title>",
                                       content_type="text/html"))
    base = f"http://{HOST}"
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "post.md").write_text(
        "---\ntitle: sounds\n---\n"
        f'<audio src="{base}/a/talk.mp3" controls></audio>\n'
        f'<audio controls><source src="{base}/a/voice.ogg" type="audio/ogg"></audio>\n'
        f"[listen]({base}/a/clip.m4a) and [a tone]({base}/a/tone.wav) "
        f"and <{base}/a/song.flac>\n"
        f'<video src="{base}/a/old.flv"></video><video src="{base}/a/stream?id=3"></video>\n'
        f'<audio src="{base}/a/page.mp3"></audio>\n', encoding="utf-8")
    settings = Settings().with_overrides(
        fetch={"connect_to": [f"{HOST}:80:127.0.0.1:{origin.port}"],
               "allow_private": ["127.0.0.0/8"], "retries": 0},
        store={"url": str(tmp_path / "archive")})
    result = archive_paths([str(posts)], settings)
    assert result.summary.statuses == {"archived": len(SOUNDS) + 1, "failed": 1}
    assert result.summary.errors == {"not-media": 1}  # an HTML page is still not media
    with open_store(settings.store) as store:
        stored = {}
        for info in store.list("media/"):
            head = store.head(info.key)
            assert head is not None
            stored[info.key.rsplit(".", 1)[1]] = head.content_type
    assert stored == {"mp4": "video/mp4",
                      **{ext: media_type for _, (media_type, ext) in SOUNDS.values()}}
