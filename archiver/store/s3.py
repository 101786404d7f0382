"""S3 (and S3-compatible: MinIO, Ceph, R2) through botocore, with the same keys as a local store.

Create-only writes use ``If-None-Match: *`` (PUT and CompleteMultipartUpload) so two workers
racing on one content address cannot both create it; servers that answer 501 to that get a
HEAD check instead (detected once per store). Every put also HEADs first, so an object that
exists is never uploaded again. Large bodies go up in multipart, one part in memory at a time.
botocore errors are mapped to the archiver tree in ``s3_errors.mapped`` only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from archiver.errors import (
    BucketMissing,
    ConfigError,
    ObjectMissing,
    StoreError,
    StoreRejected,
)
from archiver.settings import StoreSettings
from archiver.store.base import Closing, ObjectInfo, clean_metadata
from archiver.store.keys import check_key
from archiver.store.s3_errors import EXISTS, error_code, mapped, unsupported
from archiver.store.s3_fast import FastPut
from archiver.store.s3_models import quick_loader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIN_PART = 5 * 1024 * 1024  # S3's minimum part size (all parts but the last)
MAX_PARTS = 10_000
_SHA256 = re.compile(r"[0-9a-f]{64}")


def make_client(settings: StoreSettings) -> S3Client:
    """A botocore S3 client (what boto3's ``client("s3")`` is) from a fresh session (sessions
    are not thread-safe; clients are). Not through boto3: its session adds nothing archiver
    uses (resources, the transfer manager) and costs 40-80 ms of every S3 run's start.

    Checksums are only sent or checked when an operation requires them: newer SDKs default to
    CRC trailers that several S3-compatible servers reject. With ``endpoint_url`` unset,
    botocore still honours ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` and its config files,
    and the credentials come from the usual chain.
    """
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": settings.addressing_style},
        retries={"mode": "standard", "max_attempts": max(1, settings.request_attempts)},
        max_pool_connections=settings.max_pool_connections,
    )
    session = botocore.session.get_session()
    # Its data files parsed for less (s3_models.py): about half of the client's creation.
    session.register_component("data_loader",
                               quick_loader(session.get_config_variable("data_path")))
    # botocore parses every timestamp with dateutil, a quarter of a millisecond each: most of
    # the CPU of listing 50,000 manifest records. S3 sends ISO 8601 (listings) or RFC 7231
    # dates (headers); both have a fast path, dateutil stays the fallback.
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_parse_timestamp)
    return cast("S3Client", session.create_client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config))


def _parse_timestamp(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return botocore_parse_timestamp(value)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); ConfigError if malformed."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"not an s3://bucket/prefix URL: {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except StoreRejected as exc:
            raise ConfigError(f"unsafe prefix in store URL {url!r}") from exc
        prefix += "/"
    return parts.netloc, prefix


class S3Store(Closing):
    """A Store over ``s3://bucket/prefix``. One client, shared by every thread."""

    page_size = 1000  # keys per LIST page (S3's maximum)
    # Listings are round trips: callers with uniformly named keys (the manifest's records,
    # named by sha256) list one prefix per leading hex digit at once.
    parallel_list = True

    def __init__(self, url: str, settings: StoreSettings, client: S3Client | None = None) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.settings = settings
        self.client = client or make_client(settings)
        self._fast = FastPut(self.client)
        self._conditional = settings.conditional_writes
        self._chunk = max(settings.multipart_chunksize, MIN_PART)
        self._threshold = max(settings.multipart_threshold, 1)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    @property
    def conditional_writes(self) -> bool | None:
        """Whether the server honours If-None-Match (None until the first create-only write)."""
        return self._conditional

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests, ``--create-bucket``)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if error_code(exc)[0] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise mapped(exc, self.bucket, f"create bucket {self.bucket}") from exc
        except BotoCoreError as exc:
            raise mapped(exc, self.bucket, f"create bucket {self.bucket}") from exc

    def check(self) -> None:
        """Raise unless the bucket exists and answers: BucketMissing or StoreDenied naming
        it, StoreUnavailable when the endpoint does not answer (a worker's startup check)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc)[1] == 404:  # a HEAD has no body, so no "NoSuchBucket" code
                raise BucketMissing(f"bucket {self.bucket!r} does not exist", code="404",
                                    bucket=self.bucket) from exc
            raise mapped(exc, self.bucket, f"check bucket {self.bucket}") from exc
        except BotoCoreError as exc:
            raise mapped(exc, self.bucket, f"check bucket {self.bucket}") from exc

    def exists(self, key: str) -> bool:
        return self._head(self._full(key)) is not None

    def head(self, key: str) -> ObjectInfo | None:
        return self._head(self._full(key))

    def _head(self, full: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            error = mapped(exc, self.bucket, f"head {full}")
            if isinstance(error, ObjectMissing):
                return None
            raise error from exc
        return ObjectInfo(full[len(self.prefix):], resp["ContentLength"],
                          resp["LastModified"].timestamp(), resp.get("ETag", "").strip('"'),
                          resp.get("ContentType"), dict(resp.get("Metadata", {})))

    def put(self, key: str, file: IO[bytes], size: int, content_type: str,
            metadata: dict[str, str] | None = None) -> bool:
        full = self._full(key)
        # A HEAD first saves uploading bytes that are already there; for small objects on a
        # server that honours If-None-Match the conditional PUT alone is cheaper (one request).
        small = size < self._threshold
        if (not small or self._conditional is False) and self._head(full) is not None:
            return False
        meta = clean_metadata(metadata)
        if not small:
            return self._multipart(full, file, size, content_type, meta)
        start = file.tell()
        # A Content-Length longer than the body would leave the server waiting for bytes that
        # never come, so measure first (spooled blobs are seekable; others are small here).
        end = file.seek(0, io.SEEK_END)
        if end - start != size:
            raise StoreRejected(f"expected {size} bytes for {full}, have {end - start}")
        # The sha256 the pipeline computed while downloading: signed as the payload's, so the
        # fast path does not hash the body again (S3 refuses a body that does not match).
        known = (metadata or {}).get("sha256") if start == 0 else None
        return self._put_object(full, size, content_type, meta, create_only=True,
                                body=lambda: _rewound(file, start),
                                payload_sha256=known if known and _SHA256.fullmatch(known)
                                else None)

    def put_bytes(self, key: str, data: bytes, content_type: str,
                  metadata: dict[str, str] | None = None, overwrite: bool = False) -> bool:
        full = self._full(key)
        meta = clean_metadata(metadata)
        if not overwrite and self._conditional is not True and self._head(full) is not None:
            return False
        return self._put_object(full, len(data), content_type, meta, create_only=not overwrite,
                                body=lambda: io.BytesIO(data),
                                payload_sha256=hashlib.sha256(data).hexdigest())

    def _put_object(self, full: str, size: int, content_type: str, meta: dict[str, str],
                    create_only: bool, body: Any, payload_sha256: str | None = None) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "ContentLength": size,
                                  "ContentType": content_type, "Metadata": meta}
        if create_only and self._conditional is not False:
            created = self._fast.put(full, body(), size, content_type, meta,
                                     payload_sha256=payload_sha256)
            if created is not None:
                self._conditional = True
                return created
            self._fast.expect(full)  # the next ones take the fast path (s3_fast.py)
            try:
                self.client.put_object(Body=body(), IfNoneMatch="*", **kwargs)
                self._conditional = True
                return True
            except (ClientError, BotoCoreError) as exc:
                if error_code(exc)[0] in EXISTS:
                    return False
                if not unsupported(exc):
                    raise mapped(exc, self.bucket, f"put {full}") from exc
                self._conditional = False
            if self._head(full) is not None:  # the fallback's check: racy, but only by a hair
                return False
        if self._fast.put(full, body(), size, content_type, meta, create_only=False,
                          payload_sha256=payload_sha256):
            return True
        self._fast.expect(full)
        try:
            self.client.put_object(Body=body(), **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise mapped(exc, self.bucket, f"put {full}") from exc
        return True

    def _multipart(self, full: str, file: IO[bytes], size: int, content_type: str,
                   meta: dict[str, str]) -> bool:
        chunk = max(self._chunk, math.ceil(size / MAX_PARTS))
        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ContentType=content_type, Metadata=meta,
            )["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            raise mapped(exc, self.bucket, f"start multipart {full}") from exc
        try:
            parts: list[dict[str, Any]] = []
            sent = 0
            # One part in memory at a time: memory stays near ``chunk`` whatever the size.
            while data := file.read(chunk):
                number = len(parts) + 1
                resp = self.client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload_id,
                                               PartNumber=number, Body=data)
                parts.append({"ETag": resp["ETag"], "PartNumber": number})
                sent += len(data)
                del data
            if sent != size:
                raise StoreRejected(f"expected {size} bytes for {full}, read {sent}")
            return self._complete(full, upload_id, parts)
        except BaseException as exc:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full,
                                                   UploadId=upload_id)
            if isinstance(exc, (ClientError, BotoCoreError)):
                raise mapped(exc, self.bucket, f"multipart {full}") from exc
            raise

    def _complete(self, full: str, upload_id: str, parts: list[dict[str, Any]]) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "UploadId": upload_id,
                                  "MultipartUpload": {"Parts": parts}}
        if self._conditional is not False:
            try:
                self.client.complete_multipart_upload(IfNoneMatch="*", **kwargs)
                self._conditional = True
                return True
            except ClientError as exc:
                if error_code(exc)[0] in EXISTS:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=full,
                                                       UploadId=upload_id)
                    return False
                if not unsupported(exc):
                    raise
                self._conditional = False
            if self._head(full) is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full,
                                                   UploadId=upload_id)
                return False
        self.client.complete_multipart_upload(**kwargs)
        return True

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def open(self, key: str) -> IO[bytes]:
        full = self._full(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise mapped(exc, self.bucket, f"get {full}") from exc
        return io.BufferedReader(_BodyReader(body, self.bucket, full), 1024 * 1024)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if any(part in (".", "..") for part in prefix.split("/")):
            raise StoreRejected(f"bad prefix: {prefix!r}")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix,
                                   PaginationConfig={"PageSize": self.page_size})
        try:
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][len(self.prefix):], obj["Size"],
                                     obj["LastModified"].timestamp(),
                                     obj.get("ETag", "").strip('"'))
        except (ClientError, BotoCoreError) as exc:
            raise mapped(exc, self.bucket, f"list {self.prefix + prefix}") from exc

    def delete(self, keys: Iterable[str]) -> None:
        full = [self._full(key) for key in keys]
        for start in range(0, len(full), 1000):  # DeleteObjects takes 1000 keys at most
            batch: list[Any] = [{"Key": key} for key in full[start:start + 1000]]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise mapped(exc, self.bucket, f"delete {len(batch)} objects") from exc
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise StoreError(f"cannot delete {first.get('Key')}: {first.get('Message')}")

    def public_url(self, key: str) -> str:
        full = quote(self._full(key), safe="/~")
        endpoint = self.client.meta.endpoint_url.rstrip("/")
        style = self.settings.addressing_style
        if style == "virtual" or (style == "auto" and self.settings.endpoint_url is None):
            scheme, _, host = endpoint.partition("://")
            return f"{scheme}://{self.bucket}.{host}/{full}"
        return f"{endpoint}/{self.bucket}/{full}"

    def close(self) -> None:
        self._fast.close()
        self.client.close()


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a raw stream, its errors mapped like every other call."""

    def __init__(self, body: Any, bucket: str, key: str) -> None:
        self._body = body
        self.bucket = bucket
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except (ClientError, BotoCoreError) as exc:
            raise mapped(exc, self.bucket, f"read {self._key}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _rewound(file: IO[bytes], start: int) -> IO[bytes]:
    file.seek(start)
    return file
