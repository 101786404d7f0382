"""A create-only PutObject without botocore's per-call machinery: the hot path of a run into S3.

A ``put_object`` through the client costs about 2.5 ms of CPU on top of the request itself
(parameter validation, serialisation, about 20 events and their handlers, endpoint rules,
retry bookkeeping, parsing): more than all of archiver's other work on a small image. The
request itself is simple, so once the client has made one (``learn``: the URL it resolved for
this bucket, its credentials, region and HTTP session), the next ones are built here: the same
headers, signed with AWS Signature Version 4 as botocore's ``S3SigV4Auth`` signs them
(``sign``: the same canonical request, the signing key derived once a day instead of per
request, no header object per request; the payload's sha256 is signed as before, the one the
pipeline computed while downloading when the caller has it, so the server checks the bytes it
receives against the bytes archiver fetched), and sent by s3_wire.py with the client
session's timeouts, socket options and TLS settings (through the session itself when a proxy
is configured for the bucket's URL).

Only the plain answers are taken here: 200 (stored) and, for a create-only PUT, 412 (the
object exists). Anything else (an error status, a connection that fails) returns None, and
the caller sends the same request through the client, which retries, maps errors and falls
back as it always did; after a few such misses in a row the fast path turns itself off for
the store. But a body that the server finds is not the one hashed raises StoreError: sent
through the client, it would be stored under another content's address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST
from botocore.awsrequest import AWSRequest

from archiver.errors import StoreError
from archiver.store.s3_wire import Sender, error_code, host_header

log = logging.getLogger(__name__)

MISSES = 3  # unusual answers in a row before the fast path is off for the store
DIGEST_MISMATCH = "XAmzContentSHA256Mismatch"  # S3's code: the body's sha256 is not the signed one


class FastPut:
    """Create-only PutObject for one bucket, learnt from one request the client made."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.base: str | None = None  # the bucket's URL, the key appended
        self.sender: Sender | None = None  # None: sent through the client's session
        self._lock = threading.Lock()
        self._misses = 0
        self.off = False
        self._wanted: str | None = None
        client.meta.events.register("before-send.s3.PutObject", self._learn)

    def expect(self, full: str) -> None:
        """The client is about to PUT ``full``: learn the bucket's URL from that request."""
        if self.base is None and not self.off:
            self._wanted = full

    def _learn(self, request: Any, **_: Any) -> None:
        wanted = self._wanted
        if wanted is None or self.base is not None:
            return
        url = str(request.url).split("?", 1)[0]
        quoted = quote(wanted, safe="/~")
        if url.endswith("/" + quoted):
            base = url[:-len(quoted)]
            try:
                self.sender = Sender.for_client(self.client, base)
            except (OSError, ValueError) as exc:  # a CA bundle or client cert it cannot load
                log.info("S3 PUTs go through the client's session: %s", exc)
            self.base = base

    def put(self, full: str, body: IO[bytes], size: int, content_type: str,
            meta: dict[str, str], create_only: bool = True,
            payload_sha256: str | None = None) -> bool | None:
        """True: created (or replaced); False: the key exists (create-only); None: not done
        here (the caller sends it through the client). ``payload_sha256``: the body's sha256
        when the caller knows it (hashed here otherwise). Raises StoreError when the server
        finds that the bytes it received do not have that sha256
        (``XAmzContentSHA256Mismatch``): the body is not what was hashed while downloading,
        and the client, which signs the sha256 of what it reads (or none, over HTTPS), would
        store it under a content address that is not its own."""
        base = self.base
        if base is None or self.off:
            return None
        signer = getattr(self.client, "_request_signer", None)
        credentials = getattr(signer, "_credentials", None)
        session = getattr(getattr(self.client, "_endpoint", None), "http_session", None)
        if credentials is None or session is None:
            self.off = True
            return None
        headers = {"Content-Type": content_type, "Content-Length": str(size),
                   **({"If-None-Match": "*"} if create_only else {}),
                   **{f"x-amz-meta-{name}": value for name, value in meta.items()}}
        url = base + quote(full, safe="/~")
        digest = payload_sha256 or _sha256_of(body)
        try:
            signed = sign("PUT", url, headers, digest, credentials.get_frozen_credentials(),
                          self.client.meta.region_name or "us-east-1")
            if self.sender is not None:
                status, code = self.sender.put(urlsplit(url).path, signed, body, size)
            else:
                request = AWSRequest(method="PUT", url=url, data=body, headers=signed)
                response = session.send(request.prepare())
                status = response.status_code
                code = error_code(response.content) if status >= 300 else ""
        except Exception as exc:  # the client's path handles and maps it
            log.debug("fast PUT of %s not done: %s", full, exc)
            status, code = 0, ""
        if code == DIGEST_MISMATCH:
            raise StoreError(f"the bytes sent for {full} do not have the sha256 they were "
                             f"stored under ({digest}): the server refused them")
        if status == 200 or (status == 412 and create_only):
            self._misses = 0
            return bool(status == 200)
        with self._lock:
            self._misses += 1
            if self._misses >= MISSES:
                self.off = True
                log.info("S3 PUTs go through the client only: %d unusual answers in a row",
                         self._misses)
        return None

    def close(self) -> None:
        """Close the idle connections (the next PUT opens one again)."""
        if self.sender is not None:
            self.sender.close()


_KEYS: dict[tuple[str, str, str], bytes] = {}  # (secret, day, region) -> signing key


def sign(method: str, url: str, headers: dict[str, str], payload_sha256: str,
         credentials: Any, region: str, now: datetime | None = None) -> dict[str, str]:
    """``headers`` with ``X-Amz-Date``, ``X-Amz-Content-SHA256``, the session token if any and
    ``Authorization``: AWS Signature Version 4 for S3, as botocore's ``S3SigV4Auth`` computes
    it for the same request (the URL's path as it is, no query string; tests compare the two).
    ``credentials``: botocore's frozen credentials (access_key, secret_key, token)."""
    if "?" in url:
        raise ValueError("a query string is not signed here")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    out = {**headers, "X-Amz-Date": stamp, "X-Amz-Content-SHA256": payload_sha256}
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    values = {name.lower(): " ".join(value.split()) for name, value in out.items()
              if name.lower() not in SIGNED_HEADERS_BLACKLIST}
    parts = urlsplit(url)
    values.setdefault("host", host_header(parts.scheme, parts.hostname or "", parts.port))
    names = sorted(values)
    signed_headers = ";".join(names)
    canonical = "\n".join([method, parts.path, "",
                           "".join(f"{name}:{values[name]}\n" for name in names),
                           signed_headers, payload_sha256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(_signing_key(credentials.secret_key, day, region), to_sign.encode(),
                         hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = _KEYS.get((secret, day, region))
    if key is None:
        key = ("AWS4" + secret).encode()
        for part in (day, region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        if len(_KEYS) > 16:
            _KEYS.clear()
        _KEYS[(secret, day, region)] = key
    return key


def _sha256_of(body: IO[bytes]) -> str:
    """The sha256 of what is left of ``body``, which is rewound to where it was."""
    start = body.tell()
    digest = hashlib.sha256()
    while chunk := body.read(1024 * 1024):
        digest.update(chunk)
    body.seek(start)
    return digest.hexdigest()
