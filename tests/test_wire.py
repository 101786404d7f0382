"""The lean path's HTTP/1.1 reader (archiver/fetch/wire.py) against h11, with hypothesis:
whatever it accepts, h11 accepts with the same status, fields, body and reusability; whatever
h11 refuses, it refuses; well-formed responses are accepted whichever way the bytes arrive."""

from __future__ import annotations

import re
from collections.abc import Iterator

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archiver.fetch.wire import Body, ProtocolError, read_head, request_bytes

Result = tuple[int, list[tuple[bytes, bytes]], bytes, bool] | None


def feeder(pieces: list[bytes]) -> Iterator[bytes]:
    yield from pieces
    while True:
        yield b""  # the server closed


def ours(pieces: list[bytes]) -> Result:
    feed = feeder(pieces)

    def recv(n: int) -> bytes:
        # a socket returns at most n bytes: keep the rest for the next read
        nonlocal pending
        if not pending:
            pending = next(feed)
        out, pending = pending[:n], pending[n:]
        return out

    pending = b""
    try:
        head, buf = read_head(b"", recv, float("inf"), lambda: 0.0)
        body = Body(head, buf, recv)
        data = b"".join(body.chunks())
    except ProtocolError:
        return None
    reusable = head.keep_alive and not body.rest and not pending
    return head.status, _compared(head.fields), data, reusable


def _compared(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Fields but the framing ones: wire.py keeps them as received, h11 collapses "5, 5" and
    repeats to one and lowercases "Chunked" (the bodies compared say whether both framed
    alike)."""
    return [(n, v) for n, v in fields if n.lower() not in (b"content-length",
                                                           b"transfer-encoding")]


def theirs(pieces: list[bytes]) -> Result:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=100 * 1024)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a.test")]))
    conn.send(h11.EndOfMessage())
    feed = feeder(pieces)
    status, fields, body = 0, [], b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(next(feed))
            elif isinstance(event, h11.Response):
                status, fields = event.status_code, _compared(list(event.headers.raw_items()))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None
    # bytes a server sends later are unknown to both (the pool's idle check is for those)
    reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE and \
        not conn.trailing_data[0]
    return status, fields, body, reusable


def agree(raw: bytes, cuts: list[int]) -> Result:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True) if b > a]
    mine, h11s = ours(pieces), theirs(pieces)
    if mine is not None:
        assert h11s is not None, "accepted what h11 refuses"
        assert mine[:3] == h11s[:3]
        assert not mine[3] or h11s[3], "reused a connection h11 would not"
    else:
        assert h11s is None or _stricter(raw), f"refused what h11 accepts: {raw[:300]!r}"
    return mine


def _stricter(raw: bytes) -> bool:
    """What wire.py refuses on purpose though h11 takes it: bare LF line ends, folded lines,
    HTTP versions other than 1.0/1.1, a status below 100 or 101, both framings at once,
    Content-Length over 18 digits, control characters in the head (RFC 9110 5.5) or in a
    chunk extension, more than 500 fields, heads over 100 KB."""
    # the final head is judged: interim 1xx heads (any reason phrase) before it are skipped
    raw = re.sub(rb"\A(?:HTTP/1\.1 1(?!01)[0-9]{2}[^\r\n]*\r\n\r\n)+", b"", raw)
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    return (b"\n" in head.replace(b"\r\n", b"") or b"\r\n " in head or b"\r\n\t" in head
            or not head.startswith((b"http/1.0 ", b"http/1.1 ")) or head[9:12] < b"100"
            or head[9:12] == b"101" or (b"content-length" in head
                                        and b"transfer-encoding" in head)
            or len(head) > 100 * 1024 or head.count(b"\r\n") > 499
            or re.search(rb"[0-9]{19}", head) is not None
            or re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", head) is not None
            or re.search(rb"[0-9a-fA-F];[^\r]*[\x00-\x08\x0b-\x1f\x7f]", raw) is not None)


# --- generated responses ---------------------------------------------------------------------

STATUS = st.sampled_from([
    b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200",
    b"HTTP/1.1 200 ", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", b"HTTP/1.1 2000 OK",
    b"HTTP/2 200 OK", b"HTTP/1.1 099 X", b"HTTP/1.1 101 Switching", b"HTTP/1.1  200 OK",
    b"http/1.1 200 OK", b"HTTP/1.1 200 O\x00K", b"ICY 200 OK", b"HTTP/1.1 301 Moved\xe9",
])
NAME = st.sampled_from([b"Content-Type", b"X-A", b"Server", b"Bad Name", b"X\x00", b"",
                        b"Set-Cookie", b"ETag", b"x-\xe9"])
VALUE = st.sampled_from([b"image/jpeg", b"a b", b" padded ", b"\tt\t", b"", b"a\x00b",
                         b"a\x7fb", b"caf\xe9", b"v" * 300, b"\"q\""])
LENGTH = st.sampled_from([b"{n}", b"{n}, {n}", b"{n},{n}", b"0{n}", b"{n}, 1", b"-1", b"0x5",
                          b" {n} ", b"", b"99999999999999999999", b"1"])
CODING = st.sampled_from([b"chunked", b"Chunked", b"gzip", b"gzip, chunked", b"chunked, chunked",
                          b"identity", b" chunked"])
FRAMING = st.sampled_from(["length", "chunked", "close", "length+chunked", "two-lengths",
                           "two-codings", "length-close"])


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = draw(STATUS)
    fields = [(draw(NAME), draw(VALUE)) for _ in range(draw(st.integers(0, 4)))]
    body = draw(st.binary(max_size=300))
    framing = draw(FRAMING)
    n = str(len(body)).encode()
    encoded = body
    if "length" in framing:
        fields.append((b"Content-Length", draw(LENGTH).replace(b"{n}", n)))
        if framing == "two-lengths":
            fields.append((b"Content-Length", draw(LENGTH).replace(b"{n}", n)))
    if "chunked" in framing or framing == "two-codings":
        fields.append((b"Transfer-Encoding", draw(CODING)))
        if framing == "two-codings":
            fields.append((b"Transfer-Encoding", draw(CODING)))
        size = draw(st.integers(1, 64))
        ext = draw(st.sampled_from([b"", b";x=1", b" ", b" ;x", b";\x00"]))
        encoded = b"".join(b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), ext, body[i:i + size])
                           for i in range(0, len(body), size))
        encoded += b"0\r\n" + draw(st.sampled_from([b"", b"X-T: 1\r\n", b"bad trailer\r\n"]))
        encoded += b"\r\n"
    if draw(st.booleans()):
        fields.append((b"Connection", draw(st.sampled_from([b"close", b"keep-alive",
                                                           b"Keep-Alive, Close"]))))
    sep = draw(st.sampled_from([b"\r\n"] * 8 + [b"\n"]))
    head = sep.join([status, *(name + b":" + draw(st.sampled_from([b" ", b"", b"\t"])) + value
                                for name, value in fields)]) + sep + sep
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "extra", "flip"]))
    raw = head + encoded
    if damage == "cut" and raw:
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif damage == "extra":
        raw += draw(st.sampled_from([b"junk", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]))
    elif damage == "flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]
    return raw


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.lists(st.integers(0, 2000), max_size=6))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", [])
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", [1, 40])
def test_the_reader_is_a_strict_subset_of_h11(raw: bytes, cuts: list[int]) -> None:
    agree(raw, cuts)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 400), max_size=4))
def test_arbitrary_bytes(raw: bytes, cuts: list[int]) -> None:
    agree(b"HTTP/1.1 200 OK\r\n" + raw, cuts)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 700), st.lists(st.integers(0, 3000), max_size=8))
def test_well_formed_responses_are_read_whole(body: bytes, size: int, cuts: list[int]) -> None:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                      for i in range(0, len(body), size))
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % chunks
    closed = b"HTTP/1.0 200 OK\r\n\r\n" + body
    for raw, reusable in ((sized, True), (chunked, True), (closed, False)):
        assert agree(raw, cuts) == (200, [], body, reusable)


@pytest.mark.parametrize("target,fields", [
    (b"/a b", []), (b"/a\r\nX: y", []), (b"a", []), (b"/", [(b"X", b"a\r\nb")]),
    (b"/", [(b"Bad Name", b"x")]), (b"/", [(b"X", b" lead")]), (b"/", [(b"X", b"a\x00")]),
])
def test_a_request_that_could_split_is_refused(target: bytes, fields: list[tuple[bytes, bytes]]
                                               ) -> None:
    with pytest.raises(ValueError):
        request_bytes(target, b"a.test", fields)
    assert request_bytes(b"/a?b=1", b"a.test:8080", [(b"Accept", b"*/*")]) == \
        b"GET /a?b=1 HTTP/1.1\r\nHost: a.test:8080\r\nAccept: */*\r\n\r\n"
