"""A create-only PutObject without botocore's per-call machinery: the hot path of a run into S3.

A ``put_object`` through the client costs about 2.5 ms of CPU on top of the request itself
(parameter validation, serialisation, about 20 events and their handlers, endpoint rules,
retry bookkeeping, parsing): more than all of archiver's other work on a small image. The
request itself is simple, so once the client has made one (``learn``: the URL it resolved for
this bucket, its credentials, region and HTTP session), the next ones are built here: the same
headers, signed by botocore's own SigV4 signer (``S3SigV4Auth``: the payload's sha256 signed
as before), sent on the client's own connection pool, TLS settings and proxies.

Only the plain answers are taken here: 200 (stored) and, for a create-only PUT, 412 (the
object exists). Anything
else (an error status, a connection that fails) returns None, and the caller sends the same
request through the client, which retries, maps errors and falls back as it always did;
after a few such misses in a row the fast path turns itself off for the store.
"""

from __future__ import annotations

import logging
import threading
from typing import IO, Any
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

log = logging.getLogger(__name__)

MISSES = 3  # unusual answers in a row before the fast path is off for the store


class FastPut:
    """Create-only PutObject for one bucket, learnt from one request the client made."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.base: str | None = None  # the bucket's URL, the key appended
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
            self.base = url[:-len(quoted)]

    def put(self, full: str, body: IO[bytes], size: int, content_type: str,
            meta: dict[str, str], create_only: bool = True) -> bool | None:
        """True: created (or replaced); False: the key exists (create-only); None: not done
        here (the caller sends it through the client)."""
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
        request = AWSRequest(method="PUT", url=base + quote(full, safe="/~"), data=body,
                             headers=headers)
        try:
            S3SigV4Auth(credentials.get_frozen_credentials(), "s3",
                        self.client.meta.region_name or "us-east-1").add_auth(request)
            response = session.send(request.prepare())
            status = response.status_code
        except Exception as exc:  # the client's path handles and maps it
            log.debug("fast PUT of %s not done: %s", full, exc)
            status = 0
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
