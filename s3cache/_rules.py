"""What the server's answers mean, as data: operation outcomes and the typed errors of failures.

:data:`RULES` maps each operation (with the variant that changes its meaning, such as a
conditional PutObject) to the error replies that are outcomes, not failures, by S3 error code
(or the status as text, for a reply without a body): a missing object, a refused conditional
write, an object already gone. Every other error reply is a failure, typed by :func:`failure`
(with the likely cause, :mod:`s3cache._refusal`); exceptions from the clients are typed by
:func:`translate`. Messages name no credentials and no values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from botocore.exceptions import (
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3cache._bucket_options import BucketOptions
from s3cache._refusal import explain, key_too_long
from s3cache._reply import Reply
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ChecksumMismatchError,
    CredentialsError,
    EndpointUnreachableError,
    KeyTooLongError,
    NotSupportedError,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
)

__all__ = [
    "FAILURES",
    "RULES",
    "Outcome",
    "Rules",
    "class_for_code",
    "failure",
    "translate",
    "warning_in",
]

#: ``ok``: done. ``missing``: no such object (a miss). ``refused``: a conditional write's
#: condition failed. ``gone``: the object is not there (a delete's 404; an If-Match write's
#: 404). ``empty``: the bucket has no such setting (no lifecycle rules, no policy).
#: ``explain``: a bodyless 403 (a HEAD's): a request of the same permission that has a body
#: tells what it is. The rest are failures: ``no_bucket``, ``unsupported`` (the server lacks
#: the API) and ``error``.
Outcome = Literal[
    "ok", "missing", "refused", "gone", "empty", "explain", "no_bucket", "unsupported", "error"
]
#: The outcomes that are failures (raised as typed errors).
FAILURES: Final = frozenset({"no_bucket", "unsupported", "error"})

_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_BUCKET_CODES: Final = frozenset({"NoSuchBucket"})
#: A 403 without a body (to a HEAD): no code says whether it is the credentials.
_BODYLESS_403: Final = frozenset({"403", "Forbidden"})
#: A conditional write refused: its condition failed, or a conflicting conditional write was in
#: progress (S3's 409, which :meth:`Transport.put_if` verifies like a 412).
_REFUSED_CODES: Final = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_ACCESS_CODES: Final = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
_CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "RequestTimeTooSkewed",
    }
)
#: A key the server finds too long although S3 would take it (SeaweedFS: an object name over
#: 255 bytes).
_KEY_TOO_LONG_CODES: Final = frozenset({"KeyTooLongError", "KeyTooLong"})
_SERVER_CODES: Final = frozenset({"SlowDown", "ServiceUnavailable", "InternalError"})
#: Error codes of servers that do not implement an S3 API (MinIO, Ceph, R2, B2, moto variants).
_UNSUPPORTED_CODES: Final = frozenset(
    {
        "NotImplemented",
        "XNotImplemented",
        "MethodNotAllowed",
        "UnsupportedOperation",
        "NotSupported",
    }
)
_UNSUPPORTED_STATUSES: Final = frozenset({405, 501})
_CONNECTION_ERRORS: Final = (
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, SSLError, proxies
    HTTPClientError,  # ConnectionClosedError, ResponseStreamingError, ...
    ResponseStreamingError,
    IncompleteReadError,
    OSError,
)
_NO_OPTIONS: Final = BucketOptions()


@dataclass(frozen=True, slots=True)
class Rules:
    """How the error replies of one operation read: ``outcomes`` by code (S3's, or the status
    as text); with ``optional_api``, an answer saying the server lacks the API is
    ``unsupported``. Any other error reply is an ``error``."""

    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    optional_api: bool = False

    def outcome(self, reply: Reply) -> Outcome:
        """What ``reply`` means for this operation."""
        if reply.status < 300:
            return "ok"
        code = reply.code
        found = self.outcomes.get(code)
        if found is not None:
            return found
        if self.optional_api and (
            code in _UNSUPPORTED_CODES or reply.status in _UNSUPPORTED_STATUSES
        ):
            return "unsupported"
        return "error"


def _each(codes: Iterable[str], outcome: Outcome) -> dict[str, Outcome]:
    return dict.fromkeys(codes, outcome)


#: The rules of every operation the transport sends, by operation (and variant).
RULES: Final[Mapping[str, Rules]] = {
    "GetObject": Rules(_each(_MISSING_CODES, "missing")),
    "HeadObject": Rules({**_each(_MISSING_CODES, "missing"), **_each(_BODYLESS_403, "explain")}),
    "PutObject": Rules(),
    "PutObject If-None-Match": Rules(_each(_REFUSED_CODES, "refused")),
    "PutObject If-Match": Rules(
        {**_each(_REFUSED_CODES, "refused"), **_each(_MISSING_CODES, "gone")}
    ),
    "DeleteObject": Rules({"NoSuchKey": "gone"}),
    "DeleteObjects": Rules(),
    "ListObjectsV2": Rules(),
    "HeadBucket": Rules(
        {**_each(_MISSING_CODES | _BUCKET_CODES, "no_bucket"), **_each(_BODYLESS_403, "explain")}
    ),
    "GetBucketLifecycleConfiguration": Rules(
        {"NoSuchLifecycleConfiguration": "empty"}, optional_api=True
    ),
    "PutBucketLifecycleConfiguration": Rules(optional_api=True),
    "DeleteBucketLifecycle": Rules(optional_api=True),
    "GetBucketPolicy": Rules({"NoSuchBucketPolicy": "empty"}, optional_api=True),
    # create_bucket (issue 26): a bucket already ours (a lost response's retry, a race) is done
    "CreateBucket": Rules({"BucketAlreadyOwnedByYou": "refused"}),
}


def class_for_code(code: str, status: int) -> type[S3CacheError]:
    """The error class of an S3 error ``code`` (and HTTP ``status``, 0 when unknown)."""
    if code in _BUCKET_CODES:
        return BucketNotFoundError
    if code in _KEY_TOO_LONG_CODES:
        return KeyTooLongError
    if code in _CREDENTIAL_CODES:
        return CredentialsError
    if code in _ACCESS_CODES or status == 403:
        return AccessDeniedError
    if status >= 500 or code in _SERVER_CODES:
        return ServerError
    return S3CacheError


def failure(
    op: str,
    key: str,
    outcome: Outcome,
    reply: Reply,
    options: BucketOptions | None = None,
) -> S3CacheError:
    """The typed error of a failed ``op`` on ``key`` (``outcome`` one of :data:`FAILURES`),
    with the likely cause where the options can cause it."""
    code, status = reply.code, reply.status
    if outcome == "no_bucket":
        return BucketNotFoundError(
            f"{op} {key!r}: NoSuchBucket (HTTP 404): no such bucket on this endpoint"
        )
    if outcome == "unsupported":
        return NotSupportedError(
            f"{op}: this server does not implement that S3 API ({code}, HTTP {status or '?'})"
        )
    cls = class_for_code(code, status)
    text = f"{op} {key!r}: {code} (HTTP {status or '?'})"
    if cls is KeyTooLongError:
        text = f"{text}: {key_too_long(key)}"
    if cls is AccessDeniedError or cls is S3CacheError:
        explained = explain(options or _NO_OPTIONS, op, code, status, reply.message)
        if explained is not None:
            cls, hint = explained
            text = f"{text}: {hint}"
    return cls(text)


def translate(
    exc: BaseException, op: str, key: str, timeout: float, options: BucketOptions | None = None
) -> S3CacheError:
    """The :class:`S3CacheError` for an exception a client raised (``ClientError`` reads as
    its reply)."""
    where = f"{op} {key!r}"
    if isinstance(exc, ClientError):
        return failure(op, key, "error", Reply.of_client_error(exc), options)
    if isinstance(exc, FlexibleChecksumError):  # botocore's own check of a GET's checksum
        return ChecksumMismatchError(
            f"{where}: checksum mismatch ({_short(exc)}); the body was damaged in transit or "
            "at rest"
        )
    if isinstance(exc, (TimeoutError, ReadTimeoutError)):
        return StoreTimeoutError(f"{where}: no answer within the {timeout:g} s deadline")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError(f"{where}: {exc}")
    if isinstance(exc, _CONNECTION_ERRORS) or _is_aiohttp_error(exc):
        return EndpointUnreachableError(f"{where}: {type(exc).__name__}: {_short(exc)}")
    return S3CacheError(f"{where}: {type(exc).__name__}: {_short(exc)}")


def warning_in(exc: BaseException) -> Warning | None:
    """The Warning behind ``exc`` (``-W error`` turns warnings into exceptions): raised as is,
    or wrapped by aiobotocore in an HTTPClientError (which botocore even retries)."""
    if isinstance(exc, Warning):
        return exc
    inner = getattr(exc, "kwargs", {}).get("error") if isinstance(exc, HTTPClientError) else None
    return inner if isinstance(inner, Warning) else None


def _is_aiohttp_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("aiohttp")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"
