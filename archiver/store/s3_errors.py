"""The one boundary from botocore's errors to the archiver error tree, for the S3 store."""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from archiver.errors import (
    BucketMissing,
    ObjectMissing,
    StoreDenied,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)

_MISSING = {"NoSuchKey", "NotFound", "404"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "AccountProblem", "InvalidToken", "ExpiredToken"}
_PERMANENT = {"InvalidBucketName", "MetadataTooLarge", "KeyTooLongError",
              "AuthorizationHeaderMalformed", "EntityTooLarge", "InvalidArgument"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled",
              "RequestLimitExceeded", "TooManyRequests", "RequestTimeout", "InternalError",
              "ServiceUnavailable", "503"}
# Connection refused or reset, DNS failures, connect and read timeouts.
_UNREACHABLE = (BotoConnectionError, HTTPClientError)
EXISTS = {"PreconditionFailed"}


def error_code(exc: BaseException) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a botocore error; ("", 0) for any other."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return str(error.get("Code", "")), int(status)
    return "", 0


def unsupported(exc: BaseException) -> bool:
    """Whether the server does not implement what was asked (``If-None-Match`` on old ones)."""
    code, status = error_code(exc)
    return status == 501 or code == "NotImplemented"


def mapped(exc: BaseException, bucket: str, what: str) -> StoreError:
    """The one boundary from botocore to the archiver error tree: a missing bucket and denied
    access are permanent and name the bucket; refused or dropped connections, timeouts, 5xx
    and throttling are StoreUnavailable (retried with backoff); a missing key is
    ObjectMissing."""
    code, status = error_code(exc)
    detail = f"{what}: {code or type(exc).__name__}: {exc}"
    if code == "NoSuchBucket":
        return BucketMissing(f"bucket {bucket!r} does not exist ({what})", code=code,
                             bucket=bucket)
    if isinstance(exc, NoCredentialsError) or code in _DENIED or status == 403:
        return StoreDenied(f"access to bucket {bucket!r} denied: {detail}", code=code,
                           bucket=bucket)
    if isinstance(exc, _UNREACHABLE) or code in _THROTTLED or status >= 500:
        return StoreUnavailable(f"store s3://{bucket} unavailable: {detail}", code=code,
                                status=status)
    if code in _PERMANENT or status == 400:
        return StoreRejected(detail, code=code)
    if code in _MISSING or status == 404:
        return ObjectMissing(f"{what}: no such object", code=code)
    return StoreError(detail, code=code, status=status)
