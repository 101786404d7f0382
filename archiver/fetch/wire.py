"""HTTP/1.1 on the wire for the lean path: a GET written, a response read, strictly.

h11 costs about 95 us of CPU per request (a GET written, a 60 KB response read in four
pieces: event objects, a state machine, header normalisation on both sides); this module
19 us (measured in memory, load 3). What is accepted is a subset of what h11 accepts
(tests/test_wire.py checks it against h11 with hypothesis):

- the head: at most ``MAX_HEAD_BYTES`` up to its empty line and ``MAX_HEADERS`` fields, lines
  ending in CRLF, a status line ``HTTP/1.0`` or ``HTTP/1.1``, three digits, a reason of
  visible characters; fields ``token: value`` with no whitespace before the colon, no folded
  lines, no control characters;
- the framing (RFC 9112 6.3): no body for 204 and 304; ``Transfer-Encoding: chunked`` alone
  (any other coding refused, and refused beside a Content-Length: two framings that
  disagree are how responses are split or smuggled); else one Content-Length (repeated
  values must agree); else the body runs to the connection's close;
- chunks: hex sizes (at most 16 digits), extensions ignored, each chunk followed by CRLF,
  trailer fields checked as header fields and bounded like the head.

A connection is reusable only after a complete HTTP/1.1 response framed by length or chunks,
without ``Connection: close``, with no byte received past its end.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import struct
from collections.abc import Callable, Iterator

from archiver.errors import TimedOut

MAX_HEAD_BYTES = 100 * 1024  # the bound httpcore gives h11
MAX_HEADERS = 500
MAX_CHUNK_LINE = 4096
RECV = 64 * 1024
# A sized body is read up to this much at a time (and a RECV more, to see what came past its
# end): every read is a system call that gives up the GIL and a chunk for the reader's hash
# (which gives it up too), so a 200 KB body already in the socket is one read, not four.
BODY_RECV = 1024 * 1024

Recv = Callable[[int], bytes]
Fields = list[tuple[bytes, bytes]]

_STATUS = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([\t \x21-\x7e\x80-\xff]*))?")
# A field is split at its colon and its value stripped before the value is checked: one
# pattern for "OWS value OWS" (as h11's) backtracks quadratically on a line of spaces ending
# in a bad byte (a 100 KB head line cost about a minute of CPU, under the GIL).
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):(.*)")
_BAD_VALUE = re.compile(rb"[^\t \x21-\x7e\x80-\xff]")
_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[\t \x21-\x7e\x80-\xff]*|[ \t]*)")
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?")


class ProtocolError(Exception):
    """The server broke HTTP/1.1 (or closed before a complete response). ``received`` says
    whether any byte of the response had come."""

    def __init__(self, message: str, received: bool = True) -> None:
        super().__init__(message)
        self.received = received


def request_bytes(target: bytes, authority: bytes, fields: Fields) -> bytes:
    """A GET for ``target`` with ``Host: authority`` and ``fields``. Raises ValueError for a
    target, name or value that could split the request or smuggle another."""
    if not _TARGET.fullmatch(target):
        raise ValueError(f"bad request target {target[:100]!r}")
    out = [b"GET ", target, b" HTTP/1.1\r\n"]
    for name, value in ((b"Host", authority), *fields):
        if not _NAME.fullmatch(name) or not _VALUE.fullmatch(value):
            raise ValueError(f"bad request field {name[:40]!r}")
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


class Head:
    """A response's status line and fields (as received), and how its body is framed."""

    __slots__ = ("chunked", "fields", "keep_alive", "length", "reason", "status", "version")

    def __init__(self, status: int, reason: bytes, version: bytes, fields: Fields) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.fields = fields
        self.length: int | None = None  # None with chunked False: until the close
        self.chunked = False
        self.keep_alive = version == b"1.1"


def read_head(buf: bytes, recv: Recv, deadline: float, clock: Callable[[], float]
              ) -> tuple[Head, bytes]:
    """The next final response's head (1xx skipped) and the bytes read past it. ``buf`` holds
    bytes already received. No read starts after ``deadline``."""
    received = bool(buf)
    while True:
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError("response head too large")
            if clock() > deadline:
                raise TimedOut("deadline passed while waiting for the response head")
            start = max(0, len(buf) - 3)
            try:
                data = recv(RECV)
            except (ConnectionError, ssl.SSLEOFError) as exc:
                raise ProtocolError(f"{type(exc).__name__}: {exc}", received) from exc
            if not data:
                raise ProtocolError("Server disconnected without sending a response."
                                    if not received else "head ended early", received)
            received = True
            buf += data
        if end > MAX_HEAD_BYTES:
            raise ProtocolError("response head too large")
        head = _parse_head(buf[:end])
        buf = buf[end + 4:]
        if head.status >= 200:
            return head, buf
        if head.status < 100 or head.status == 101:
            raise ProtocolError(f"status {head.status} to a GET")


def _parse_head(raw: bytes) -> Head:
    lines = raw.split(b"\r\n")
    m = _STATUS.fullmatch(lines[0])
    if m is None:
        raise ProtocolError(f"bad status line {lines[0][:100]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise ProtocolError(f"more than {MAX_HEADERS} header fields")
    fields = _fields(lines[1:])
    head = Head(int(m.group(2)), m.group(3) or b"", b"1." + m.group(1), fields)
    _frame(head)
    return head


def _fields(lines: list[bytes]) -> Fields:
    fields: Fields = []
    match = _FIELD.fullmatch
    bad = _BAD_VALUE.search
    for line in lines:
        f = match(line)
        if f is None:
            raise ProtocolError(f"bad header line {line[:100]!r}")
        value = f.group(2).strip(b" \t")
        if bad(value):
            raise ProtocolError(f"bad header line {line[:100]!r}")
        fields.append((f.group(1), value))
    return fields


def _frame(head: Head) -> None:
    length: bytes | None = None
    coding: list[bytes] = []
    for name, value in head.fields:
        lower = name.lower()
        if lower == b"content-length":
            for part in value.split(b","):
                part = part.strip(b" \t")
                if not part.isdigit() or len(part) > 18:
                    raise ProtocolError("bad Content-Length")
                if length is not None and part != length:  # "5" and "05" too, as h11
                    raise ProtocolError("conflicting Content-Length headers")
                length = part
        elif lower == b"transfer-encoding":
            coding.append(value)
        elif lower == b"connection" and b"close" in [
                t.strip(b" \t").lower() for t in value.split(b",")]:
            head.keep_alive = False
    if coding:
        if len(coding) > 1 or coding[0].lower() != b"chunked":
            raise ProtocolError("only Transfer-Encoding: chunked is supported")
        if length is not None:
            raise ProtocolError("both Content-Length and Transfer-Encoding")
    if head.status in (204, 304) or head.status < 200:
        head.length = 0
        return
    if coding:
        head.chunked = True
        return
    head.length = None if length is None else int(length)
    if length is None:
        head.keep_alive = False  # the body runs to the close


class Body:
    """Reads one body after its head; ``rest`` is what was read past the response's end."""

    def __init__(self, head: Head, buf: bytes, recv: Recv) -> None:
        self.head = head
        self.buf = buf
        self.recv = recv
        self.pos = 0  # chunked: where the unread bytes of buf start
        self.started = False
        self.done = False
        self.rest = b""

    def settled(self) -> bool:
        """True when the body was read to its end, or when nobody read it and all of it is
        already in the buffer (a short error page or redirect that came with its head): then
        it is taken as read, and the connection stays usable without touching the socket."""
        head = self.head
        if not self.done and not self.started and not head.chunked \
                and head.length is not None and len(self.buf) >= head.length:
            self.rest, self.buf = self.buf[head.length:], b""
            self.done = True
        return self.done

    def chunks(self) -> Iterator[bytes]:
        self.started = True
        head = self.head
        if head.chunked:
            yield from self._chunked()
        elif head.length is not None:
            yield from self._sized(head.length)
        else:
            yield from self._to_close()
        self.done = True

    def _sized(self, length: int) -> Iterator[bytes]:
        buf, self.buf = self.buf, b""
        if len(buf) >= length:
            self.rest = buf[length:]
            if length:
                yield buf[:length]
            return
        left = length - len(buf)
        if buf:
            yield buf
        recv = self.recv
        while left:
            # a RECV more than what is left: bytes that came past the body's end are then seen
            # (``rest``), and the connection is not reused for them
            data = recv(min(left, BODY_RECV) + RECV)
            if not data:
                raise ProtocolError(f"peer closed connection without sending complete message "
                                    f"body: {left} bytes missing")
            if len(data) > left:
                data, self.rest = data[:left], data[left:]
            left -= len(data)
            yield data

    def _to_close(self) -> Iterator[bytes]:
        buf, self.buf = self.buf, b""
        if buf:
            yield buf
        while data := self.recv(RECV):
            yield data

    def _more(self) -> None:
        data = self.recv(RECV)
        if not data:
            raise ProtocolError("peer closed connection in the middle of a chunked body")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def _line(self, limit: int) -> bytes | None:
        """The next line when the buffer holds all of it, else None (read more)."""
        end = self.buf.find(b"\r\n", self.pos)
        if end >= 0:
            line = self.buf[self.pos:end]
            self.pos = end + 2
            return line
        if len(self.buf) - self.pos > limit:
            raise ProtocolError("chunk size line or trailer too long")
        return None

    def _lines(self, limit: int) -> Iterator[bytes | None]:
        """Each line as ``_line`` gives it: a None after every read that did not complete one
        (the caller yields b"" then, so its reader checks its own deadline between reads: a
        size line, extension or trailer dripped a byte at a time yields no body bytes)."""
        while True:
            line = self._line(limit)
            if line is None:
                self._more()
            yield line

    def _chunked(self) -> Iterator[bytes]:
        self.pos = 0
        lines = self._lines(MAX_CHUNK_LINE)
        while True:
            while (size_line := next(lines)) is None:
                yield b""
            m = _CHUNK.fullmatch(size_line)
            if m is None:
                raise ProtocolError("bad chunk size line")
            size = int(m.group(1), 16)
            if size == 0:
                break
            while size:
                if self.pos >= len(self.buf):
                    self._more()
                piece = self.buf[self.pos:self.pos + size]
                self.pos += len(piece)
                size -= len(piece)
                yield piece
            while len(self.buf) - self.pos < 2:
                self._more()
            if self.buf[self.pos:self.pos + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            self.pos += 2
        trailer = 0
        for line in self._lines(MAX_HEAD_BYTES):
            if line is None:
                yield b""
                continue
            if not line:
                break
            trailer += len(line) + 2
            if trailer > MAX_HEAD_BYTES:
                raise ProtocolError("trailer too large")
            _fields([line])
        self.rest, self.buf, self.pos = self.buf[self.pos:], b"", 0


# Linux's "acknowledge now" switch; None elsewhere (macOS, Windows), where reads are plain.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def acking_recv(sock: socket.socket) -> Recv:
    """``sock.recv``, each read preceded on Linux by TCP_QUICKACK: the kernel acknowledges
    what arrives at once instead of up to 40 ms later.

    Why: a server that leaves Nagle's algorithm on (no TCP_NODELAY: asyncio servers handed a
    socket, many small ones) holds back a small segment while an earlier one is unacknowledged,
    e.g. the body written after the head. On a fresh connection the client acknowledges at
    once; on a kept-alive one that went request, answer, request, Linux delays its
    acknowledgements (at least 40 ms), so every small answer on a reused connection came 40 ms
    late (in bench.compare's workload, the 40% of images under 50 KB: 92 ms instead of 52).
    The switch does not stay set (the kernel goes back to delaying), so it is set before every
    read: one cheap system call per read, none where the option does not exist."""
    recv = sock.recv
    if _QUICKACK is None:
        return recv

    def read(size: int) -> bytes:
        ack_now(sock)
        return recv(size)

    return read


def ack_now(sock: socket.socket) -> None:
    """Ask the kernel to acknowledge what arrives on ``sock`` at once (``acking_recv``, and
    a reader of its own: httpx's path). Nothing where the option does not exist."""
    if _QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:  # not TCP after all (a test's socket pair): a plain read
            pass


def kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """Give a plain, blocking TCP socket the kernel's timeouts (SO_RCVTIMEO, SO_SNDTIMEO): a
    timed-out read or write fails with EAGAIN (BlockingIOError), and each one is a single
    system call, where Python's own timeouts poll() before every recv and send. Not for a TLS
    socket (OpenSSL would read EAGAIN as "want read")."""
    whole = int(seconds)
    tv = struct.pack("ll", whole, int((seconds - whole) * 1e6) or (0 if whole else 1))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def idle_unusable(sock: socket.socket) -> bool:
    """True when an idle connection has something to read: the server closed it (EOF or an
    error), or sent bytes nobody asked for. Either way it cannot carry a request."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
