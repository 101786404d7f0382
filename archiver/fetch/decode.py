"""Content-Encoding decoded here, in bounded steps, so a compression bomb cannot take memory.

httpx decodes a whole network chunk at once: a 2 KB body encoded ``gzip, gzip`` turns into a
megabyte after the first layer and a gigabyte after the second, before any cap is checked.
Here every layer is an incremental zlib decompressor asked for at most ``STEP`` bytes per call
(the rest of its input waits in ``unconsumed_tail``), and the layers are chained as
generators, so no layer ever holds more than one step of output and the caller's byte cap
stops the download after at most one step past it.

Only the encodings decoded here are advertised (``ACCEPT_ENCODING``); at most ``MAX_LAYERS``
are accepted, anything else is refused with ``BadEncoding`` (permanent: the server sends the
same thing again).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence

from archiver.errors import BadEncoding, Truncated

STEP = 64 * 1024  # the most bytes one decompression call may produce
MAX_LAYERS = 2
ACCEPT_ENCODING = "gzip, deflate"
_ALIASES = {"x-gzip": "gzip"}
_SUPPORTED = ("gzip", "deflate")


def parse_encodings(values: Sequence[str]) -> list[str]:
    """The encodings of a response, in the order they were applied (``identity`` dropped),
    from its Content-Encoding header values. Raises BadEncoding for an encoding not decoded
    here or more than ``MAX_LAYERS`` layers."""
    found: list[str] = []
    for value in values:
        for token in value.split(","):
            name = token.strip().lower()
            name = _ALIASES.get(name, name)
            if not name or name == "identity":
                continue
            if name not in _SUPPORTED:
                raise BadEncoding(f"unsupported Content-Encoding {name[:40]!r}", encoding=name[:40])
            found.append(name)
    if len(found) > MAX_LAYERS:
        raise BadEncoding(f"{len(found)} Content-Encoding layers (at most {MAX_LAYERS} accepted)",
                          layers=len(found))
    return found


class _Layer:
    """One encoding layer: an incremental decompressor whose every call is capped at STEP."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._obj: zlib._Decompress | None = None
        self._head = b""  # deflate only: bytes held until the zlib header can be recognised
        self.done = False
        if name == "gzip":
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:  # deflate: zlib-wrapped (RFC 9110) or raw, as servers send both
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            zlib_header = data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        yield from self._drain(self._obj, data)

    def _drain(self, obj: zlib._Decompress, data: bytes) -> Iterator[bytes]:
        pending = data
        while not self.done:
            try:
                out = obj.decompress(pending, STEP)
            except zlib.error as exc:
                raise BadEncoding(f"corrupt {self.name} body: {exc}") from exc
            if out:
                yield out
            if obj.eof:
                rest = obj.unused_data
                if self.name == "gzip" and rest.strip(b"\0"):
                    # Another gzip member follows (concatenated gzip is one valid body).
                    obj = self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    pending = rest
                    continue
                self.done = True  # trailing padding or garbage after the stream is ignored
                return
            pending = obj.unconsumed_tail
            # A full step may leave output inside zlib with no input left: ask again.
            if not pending and len(out) < STEP:
                return

    def finish(self) -> None:
        if not self.done:
            raise Truncated(f"{self.name} body ended before its end of stream")


def decode(chunks: Iterable[bytes], encodings: Sequence[str]) -> Iterator[bytes]:
    """The decoded body of ``chunks`` encoded with ``encodings`` (in applied order), in pieces
    of at most STEP bytes. Raises BadEncoding for corrupt data, Truncated when a compressed
    stream stops before its end."""
    if not encodings:
        yield from chunks
        return
    layers = [_Layer(name) for name in reversed(encodings)]

    def through(pieces: Iterable[bytes], layer: _Layer) -> Iterator[bytes]:
        for piece in pieces:
            yield from layer.feed(piece)
        layer.finish()

    stream: Iterable[bytes] = chunks
    for layer in layers:
        stream = through(stream, layer)
    yield from stream
